// Two worker_threads each sum half of the numbers (BigInt: the sum may
// pass 2^53 in general).
const { Worker, isMainThread, parentPort, workerData } = require("worker_threads");

if (isMainThread) {
  const t = require("fs").readFileSync(0, "utf8").trim().split(/\s+/);
  const n = Number(t[0]);
  const a = t.slice(1, 1 + n);
  const T = 2;
  let done = 0;
  let sum = 0n;
  for (let w = 0; w < T; w++) {
    const worker = new Worker(__filename, { workerData: a.filter((_, i) => i % T === w) });
    worker.on("message", (s) => {
      sum += BigInt(s);
      if (++done === T) console.log(sum.toString());
    });
    worker.on("error", (e) => {
      throw e;
    });
  }
} else {
  let s = 0n;
  for (const v of workerData) s += BigInt(v);
  parentPort.postMessage(s.toString());
}
