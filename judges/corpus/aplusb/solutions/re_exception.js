// Parses the input as JSON: "1 2" is not JSON, JSON.parse throws a
// SyntaxError, uncaught: node prints the stack and exits with status 1.
const [a, b] = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(String(a + b));
