// A valid pair followed by its sum: three tokens where two are expected.
const t = require("fs").readFileSync(0, "utf8").trim().split(/\s+/).map(Number);
const [n, x] = t;
const a = t.slice(2);
for (let i = 0; i < n; i++)
  for (let j = i + 1; j < n; j++)
    if (a[i] + a[j] === x) {
      console.log(`${i + 1} ${j + 1} ${x}`);
      process.exit(0);
    }
