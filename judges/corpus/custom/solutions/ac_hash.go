// One pass with a map from value to index: the first j whose complement was
// seen before. Differs from the expected pair on test 2 (2 3, not 1 4).
package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	in := bufio.NewReader(os.Stdin)
	var n int
	var x int64
	fmt.Fscan(in, &n, &x)
	seen := map[int64]int{}
	for j := 1; j <= n; j++ {
		var v int64
		fmt.Fscan(in, &v)
		if i, ok := seen[x-v]; ok {
			fmt.Println(i, j)
			return
		}
		if _, ok := seen[v]; !ok {
			seen[v] = j
		}
	}
}
