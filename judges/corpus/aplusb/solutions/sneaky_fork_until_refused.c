/* A fork bomb that gives up: every process forks until fork() fails, then
   exits with status 1. The main process's fork is refused as soon as the
   pids limit is reached: a runtime error (after the pids limit refused a
   fork), in milliseconds, long before any time limit. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    for (;;) {
        if (fork() < 0) {
            perror("fork");
            return 1;
        }
    }
}
