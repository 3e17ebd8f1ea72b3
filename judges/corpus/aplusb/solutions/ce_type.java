// Type error: incompatible types: String cannot be converted to long.
import java.util.Scanner;

public class Main {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        long a = in.nextLong();
        long b = in.next();
        System.out.println(a + b);
    }
}
