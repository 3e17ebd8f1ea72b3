// One number a line, then a blank line: different whitespace, same tokens.
const n = Number(require("fs").readFileSync(0, "utf8").trim());
let out = "";
for (let i = 1; i <= n; i++) out += i + "\n";
process.stdout.write(out + "\n");
