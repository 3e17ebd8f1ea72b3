/* Fork bomb. Every process forks in a loop, forever; once the pids limit
   refuses forks, every one keeps spinning on the failing fork(), so the
   tree burns CPU until the CPU-time limit kills it. Prints nothing. */
#include <unistd.h>

int main(void) {
    for (;;) fork();
}
