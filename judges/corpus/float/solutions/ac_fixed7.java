// Seven decimals (an error of at most 5e-8), with Locale.ROOT so that the
// decimal separator is a dot whatever the locale.
import java.util.Locale;
import java.util.Scanner;

public class Main {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        int a = in.nextInt(), b = in.nextInt();
        System.out.println(String.format(Locale.ROOT, "%.7f", (double) a / b));
    }
}
