// ArrayIndexOutOfBoundsException, uncaught: the JVM exits with status 1.
import java.util.Scanner;

public class Main {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        long[] v = new long[2];
        for (int i = 0; i <= 2; i++) {
            v[i] = in.hasNextLong() ? in.nextLong() : 0;
        }
        System.out.println(v[0] + v[1]);
    }
}
