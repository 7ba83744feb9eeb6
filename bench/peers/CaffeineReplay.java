// Replays an ARC block trace (decompressed text on standard input: "start count ignored
// ignored" per line, each of the `count` blocks from `start` one request) through Caffeine
// with maximumSize = capacity, for comparing hit ratios with `pagekeeper sim` on the same
// requests. Maintenance runs on the calling thread (executor Runnable::run), so the replay is
// deterministic and every eviction happens before the next request, as in the pool.
// Usage: java -cp caffeine.jar:. CaffeineReplay CAPACITY [CAPACITY...]
// Prints one JSON object per capacity: {"capacity":..,"requests":..,"hits":..,"hit_ratio":..}.

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

public final class CaffeineReplay {
  public static void main(String[] args) throws Exception {
    if (args.length == 0) {
      System.err.println("usage: CaffeineReplay CAPACITY [CAPACITY...] < trace.lis");
      System.exit(2);
    }
    List<Cache<Long, Boolean>> caches = new ArrayList<>();
    long[] hits = new long[args.length];
    for (String arg : args) {
      caches.add(Caffeine.newBuilder().maximumSize(Long.parseLong(arg)).executor(Runnable::run).build());
    }
    long requests = 0;
    try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII), 1 << 20)) {
      String line;
      while ((line = in.readLine()) != null) {
        String[] f = line.trim().split("\\s+");
        if (f.length < 2) continue;
        long start = Long.parseLong(f[0]);
        long count = Long.parseLong(f[1]);
        for (long b = start; b < start + count; b++) {
          ++requests;
          Long key = b;
          for (int i = 0; i < caches.size(); i++) {
            Cache<Long, Boolean> cache = caches.get(i);
            if (cache.getIfPresent(key) != null) {
              ++hits[i];
            } else {
              cache.put(key, Boolean.TRUE);
            }
          }
        }
      }
    }
    for (int i = 0; i < args.length; i++) {
      double ratio = requests == 0 ? 0.0 : Math.round(10000.0 * hits[i] / requests) / 100.0;
      System.out.printf("{\"capacity\":%s,\"requests\":%d,\"hits\":%d,\"hit_ratio\":%.2f}%n", args[i], requests, hits[i], ratio);
    }
  }
}
