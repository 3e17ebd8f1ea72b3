// The public class is not Main: javac refuses a public class Solution in
// Main.java ("class Solution is public, should be declared in a file named
// Solution.java").
import java.util.Scanner;

public class Solution {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        System.out.println(in.nextLong() + in.nextLong());
    }
}
