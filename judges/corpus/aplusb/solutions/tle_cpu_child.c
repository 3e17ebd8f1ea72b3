/* The parent prints the right answer and waits for a child that burns CPU
   forever: the CPU time of the whole process tree (from the cgroup) runs
   out, not the parent's own. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    printf("%lld\n", a + b);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        volatile unsigned long long spin = 0;
        for (;;) spin++;
    }
    if (child > 0) waitpid(child, NULL, 0);
    return 0;
}
