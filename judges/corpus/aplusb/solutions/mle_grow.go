// Keeps 16 MiB slices, each written, until the memory limit: an OOM kill
// (or, where an allocation is refused, "fatal error: runtime: out of
// memory"). Either is a memory limit.
package main

import "fmt"

func main() {
	var a, b int64
	fmt.Scan(&a, &b)
	var keep [][]byte
	for {
		chunk := make([]byte, 16<<20)
		for i := range chunk {
			chunk[i] = byte(i)
		}
		keep = append(keep, chunk)
		if len(keep) < 0 {
			break
		}
	}
	fmt.Println(a + b)
}
