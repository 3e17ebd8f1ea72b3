// Keeps arrays of 10^6 doubles (8 MB each, on the V8 heap): either V8's
// heap limit is reached ("FATAL ERROR: ... JavaScript heap out of memory",
// abort) or the cgroup limit is (OOM kill). Both are a memory limit.
const [a, b] = require("fs").readFileSync(0, "utf8").trim().split(/\s+/).map(Number);
const keep = [];
for (;;) {
  keep.push(new Array(1e6).fill(keep.length + 0.5));
}
console.log(String(a + b));
