// A fixed pool of four threads each sums a quarter of the numbers.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;
import java.util.StringTokenizer;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class Main {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        StringBuilder all = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) all.append(line).append(' ');
        StringTokenizer st = new StringTokenizer(all.toString());
        int n = Integer.parseInt(st.nextToken());
        long[] a = new long[n];
        for (int i = 0; i < n; i++) a[i] = Long.parseLong(st.nextToken());
        final int T = 4;
        ExecutorService pool = Executors.newFixedThreadPool(T);
        List<Future<Long>> parts = new ArrayList<>();
        for (int t = 0; t < T; t++) {
            final int start = t;
            parts.add(pool.submit(() -> {
                long s = 0;
                for (int i = start; i < n; i += T) s += a[i];
                return s;
            }));
        }
        long sum = 0;
        for (Future<Long> f : parts) sum += f.get();
        pool.shutdown();
        System.out.println(sum);
    }
}
