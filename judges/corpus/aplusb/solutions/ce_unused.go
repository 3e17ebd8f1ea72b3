// Go refuses unused variables and imports: "c declared but not used".
package main

import "fmt"

func main() {
	var a, b, c int64
	fmt.Scan(&a, &b)
	fmt.Println(a + b)
}
