// Index out of range: a Go panic exits with status 2.
package main

import "fmt"

func main() {
	var a, b int64
	fmt.Scan(&a, &b)
	v := []int64{a, b}
	i := len(v)
	fmt.Println(v[0] + v[1] + v[i])
}
