// Four goroutines each sum a quarter of the numbers, over a channel.
package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	in := bufio.NewReader(os.Stdin)
	var n int
	fmt.Fscan(in, &n)
	a := make([]int64, n)
	for i := range a {
		fmt.Fscan(in, &a[i])
	}
	const T = 4
	parts := make(chan int64, T)
	for t := 0; t < T; t++ {
		go func(t int) {
			var s int64
			for i := t; i < n; i += T {
				s += a[i]
			}
			parts <- s
		}(t)
	}
	var sum int64
	for t := 0; t < T; t++ {
		sum += <-parts
	}
	fmt.Println(sum)
}
