/* Four POSIX threads each sum a quarter of the numbers. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum { T = 4 };
static long long *a, part[T];
static int n;

static void *work(void *arg) {
    int t = (int)(long)arg;
    for (int i = t; i < n; i += T) part[t] += a[i];
    return NULL;
}

int main(void) {
    if (scanf("%d", &n) != 1) return 1;
    a = malloc(sizeof *a * (size_t)n);
    for (int i = 0; i < n; i++)
        if (scanf("%lld", &a[i]) != 1) return 1;
    pthread_t th[T];
    for (long t = 0; t < T; t++)
        if (pthread_create(&th[t], NULL, work, (void *)t) != 0) return 2;
    long long sum = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        sum += part[t];
    }
    printf("%lld\n", sum);
    return 0;
}
