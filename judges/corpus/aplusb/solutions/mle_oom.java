// Keeps allocating 8 MiB arrays (zeroed by the JVM, so written): either the
// Java heap fills (java.lang.OutOfMemoryError, uncaught) or the process
// reaches the cgroup limit first (OOM kill). Both are a memory limit.
import java.util.ArrayList;
import java.util.Scanner;

public class Main {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        long a = in.nextLong(), b = in.nextLong();
        ArrayList<long[]> keep = new ArrayList<>();
        while (true) {
            long[] chunk = new long[1 << 20];
            chunk[chunk.length - 1] = a + b;
            keep.add(chunk);
            if (keep.size() < 0) break;
        }
        System.out.println(a + b);
    }
}
