package dev.clipedge.clip.index;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.AbstractList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The device index's goals on the JVM, one thread (issue 18): for synthetic clustered unit vectors, the file size,
 * the time to load an index (IndexFile.load plus the IndexSearcher's preparation), the time to answer a query
 * (the query embedding given: text encoding excluded), and the recall@10 of the int8 index against exact float32
 * search over the original vectors. Run from android_demo/clip after {@code mvn test-compile}:
 *
 * <pre>
 *   java -Xmx6g -cp target/classes:target/test-classes dev.clipedge.clip.index.IndexBenchmark \
 *       [--rows 10000,100000,1000000] [--dir /tmp]
 * </pre>
 *
 * Vectors: 512 dimensions, rows drawn around 2,000 random cluster centres (cosine about 0.7 to their centre),
 * queries around random centres; one JSON line per (rows, element type).
 */
public final class IndexBenchmark {
  private static final int DIMENSION = 512;
  private static final int CLUSTERS = 2000;
  private static final double NOISE = 0.045; // per element; 512 * 0.045^2 ~ 1: cosine ~ 0.7 to the centre
  private static final int TOP = 10;

  private IndexBenchmark() {}

  public static void main(String[] args) throws IOException {
    String rowsFlag = "10000,100000,1000000";
    Path dir = Path.of(System.getProperty("java.io.tmpdir"));
    for (int i = 0; i + 1 < args.length; i += 2) {
      switch (args[i]) {
        case "--rows": rowsFlag = args[i + 1]; break;
        case "--dir": dir = Path.of(args[i + 1]); break;
        default: throw new IllegalArgumentException("unknown option " + args[i]);
      }
    }
    System.out.println("{\"cpu\": \"" + cpu() + "\", \"java\": \"" + System.getProperty("java.vm.version") + "\"}");
    for (String rows : rowsFlag.split(",")) {
      for (ElementType type : ElementType.values()) {
        run(Integer.parseInt(rows.trim()), type, dir);
      }
    }
  }

  private static void run(int rows, ElementType type, Path dir) throws IOException {
    int queries = rows >= 1_000_000 ? 20 : 100;
    float[][] centres = new float[CLUSTERS][];
    SplittableRandom random = new SplittableRandom(18);
    for (int c = 0; c < CLUSTERS; c++) {
      centres[c] = unit(random, null, 1.0);
    }
    float[][] query = new float[queries][];
    for (int q = 0; q < queries; q++) {
      query[q] = unit(random, centres[random.nextInt(CLUSTERS)], 0.06);
    }
    // Exact float32 ground truth, accumulated while the rows are generated (they are never all in memory as
    // floats): per query the best TOP rows by the double dot product of the float32 vectors.
    TopRows[] truth = new TopRows[queries];
    for (int q = 0; q < queries; q++) {
      truth[q] = new TopRows(TOP);
    }
    Fingerprint fingerprint = new Fingerprint(new byte[32], "dynamic_int8", "benchmark");
    // The rows as float32, generated again on each pass: for the int8 mean (docs/device_index.md), then encoded.
    List<float[]> vectors = new AbstractList<>() {
      @Override
      public float[] get(int r) {
        SplittableRandom rowRandom = new SplittableRandom(1_000_003L * r + 7);
        return unit(rowRandom, centres[rowRandom.nextInt(CLUSTERS)], NOISE);
      }

      @Override
      public int size() {
        return rows;
      }
    };
    float[] mean = type == ElementType.INT8 ? IndexRow.mean(vectors, DIMENSION) : null;
    List<IndexRow> encoded = new AbstractList<>() {
      @Override
      public IndexRow get(int r) {
        SplittableRandom rowRandom = new SplittableRandom(1_000_003L * r + 7);
        float[] vector = unit(rowRandom, centres[rowRandom.nextInt(CLUSTERS)], NOISE);
        byte[] hash = new byte[16];
        rowRandom.nextBytes(hash);
        return IndexRow.encode(String.format("photo/%09d.jpg", r), hash, vector, type, mean);
      }

      @Override
      public int size() {
        return rows;
      }
    };
    for (int r = 0; r < rows; r++) {
      SplittableRandom rowRandom = new SplittableRandom(1_000_003L * r + 7);
      float[] vector = unit(rowRandom, centres[rowRandom.nextInt(CLUSTERS)], NOISE);
      for (int q = 0; q < queries; q++) {
        double dot = 0;
        for (int j = 0; j < DIMENSION; j++) {
          dot += (double) vector[j] * query[q][j];
        }
        truth[q].offer(dot, r);
      }
    }
    Path file = dir.resolve("clip_edge_bench_" + rows + "_" + type.label() + ".clipidx");
    IndexWriter.write(file, fingerprint, type, DIMENSION, mean, encoded);
    long bytes = Files.size(file);

    double firstLoad = 0;
    double[] loads = new double[5];
    IndexSearcher searcher = null;
    for (int i = 0; i <= loads.length; i++) {
      searcher = null;
      long start = System.nanoTime();
      searcher = new IndexSearcher(IndexFile.load(file));
      double ms = (System.nanoTime() - start) / 1e6;
      if (i == 0) {
        firstLoad = ms;
      } else {
        loads[i - 1] = ms;
      }
    }
    for (int warm = 0; warm < 3; warm++) { // JIT warm-up over every query
      for (float[] q : query) {
        searcher.search(q, TOP);
      }
    }
    double[] searches = new double[queries];
    double recall = 0;
    for (int q = 0; q < queries; q++) {
      long start = System.nanoTime();
      List<IndexSearcher.Hit> hits = searcher.search(query[q], TOP);
      searches[q] = (System.nanoTime() - start) / 1e6;
      Set<String> expected = new HashSet<>();
      for (int row : truth[q].rows()) {
        expected.add(String.format("photo/%09d.jpg", row));
      }
      for (IndexSearcher.Hit hit : hits) {
        recall += expected.contains(hit.id()) ? 1.0 / TOP / queries : 0;
      }
    }
    Files.delete(file);
    System.out.printf(Locale.ROOT, "{\"rows\": %d, \"type\": \"%s\", \"file_mb\": %.2f, \"first_load_ms\": %.1f, "
        + "\"load_ms_median\": %.1f, \"search_ms_median\": %.2f, \"search_ms_p90\": %.2f, \"recall_at_10\": %.4f, "
        + "\"queries\": %d}%n", rows, type.label(), bytes / 1e6, firstLoad, median(loads), median(searches),
        percentile(searches, 0.9), recall, queries);
  }

  /**
   * A unit vector: {@code centre} plus Gaussian noise of deviation {@code noise} per element (no centre: pure
   * noise).
   */
  private static float[] unit(SplittableRandom random, float[] centre, double noise) {
    double[] v = new double[DIMENSION];
    double squares = 0;
    for (int j = 0; j < DIMENSION; j++) {
      v[j] = (centre == null ? 0 : centre[j]) + noise * gaussian(random);
      squares += v[j] * v[j];
    }
    float[] unit = new float[DIMENSION];
    for (int j = 0; j < DIMENSION; j++) {
      unit[j] = (float) (v[j] / Math.sqrt(squares));
    }
    return unit;
  }

  /** A standard normal deviate (Marsaglia's polar method; SplittableRandom in JDK 17 has no nextGaussian). */
  private static double gaussian(SplittableRandom random) {
    while (true) {
      double u = 2 * random.nextDouble() - 1;
      double w = 2 * random.nextDouble() - 1;
      double s = u * u + w * w;
      if (s > 0 && s < 1) {
        return u * Math.sqrt(-2 * Math.log(s) / s);
      }
    }
  }

  private static double median(double[] values) {
    return percentile(values, 0.5);
  }

  private static double percentile(double[] values, double p) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    return sorted[(int) Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  }

  private static String cpu() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
      if (line.startsWith("model name")) {
        return line.substring(line.indexOf(':') + 1).trim();
      }
    }
    return System.getProperty("os.arch");
  }

  /** The best {@code k} (score, row) pairs offered, ties to the smaller row. */
  private static final class TopRows {
    private final double[] scores;
    private final int[] rows;
    private int size;

    TopRows(int k) {
      scores = new double[k];
      rows = new int[k];
    }

    void offer(double score, int row) {
      if (size < scores.length) {
        scores[size] = score;
        rows[size++] = row;
        return;
      }
      int worst = 0;
      for (int i = 1; i < size; i++) {
        if (scores[i] < scores[worst]) {
          worst = i;
        }
      }
      if (score > scores[worst]) { // rows arrive in ascending order: an equal score keeps the earlier row
        scores[worst] = score;
        rows[worst] = row;
      }
    }

    int[] rows() {
      return Arrays.copyOf(rows, size);
    }
  }
}
