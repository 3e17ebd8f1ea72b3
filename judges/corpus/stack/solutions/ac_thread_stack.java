// The JVM runs main() on a thread whose stack is -Xss (1 MiB by default),
// whatever the process's stack limit: the textbook recursion, n deep, runs
// on a thread created with a 512 MiB stack instead, whatever -Xss the judge
// passes (reserved, not committed: only the frames used are resident).
import java.util.Scanner;

public class Main {
    static long k;

    static long josephus(long n) {
        if (n == 1) return 0;
        return (josephus(n - 1) + k) % n;
    }

    public static void main(String[] args) throws InterruptedException {
        Scanner in = new Scanner(System.in);
        long n = in.nextLong();
        k = in.nextLong();
        long[] answer = new long[1];
        Thread t = new Thread(null, () -> answer[0] = josephus(n) + 1, "deep", 512L << 20);
        t.start();
        t.join();
        System.out.println(answer[0]);
    }
}
