// JavaScript's default number formatting: 0.3333333333333333, -2.5, -0.
const [a, b] = require("fs").readFileSync(0, "utf8").trim().split(/\s+/).map(Number);
console.log(String(a / b));
