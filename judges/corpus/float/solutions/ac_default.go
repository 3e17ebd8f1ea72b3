// Go's default float formatting (shortest): 0.3333333333333333, -0.
package main

import "fmt"

func main() {
	var a, b int
	fmt.Scan(&a, &b)
	fmt.Println(float64(a) / float64(b))
}
