package dev.clipedge.clip.index;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The searcher against a brute-force reference that reads the same file itself (offsets from the header, as
 * docs/device_index.md lays them out) and scores every row in double precision, rounded to float32.
 */
class IndexSearcherTest {
  @TempDir Path folder;

  private record Scored(String id, float score) {}

  /** Every row of the file scored by the document's definition, best first, ties by id bytes. */
  private static List<Scored> reference(Path file, float[] query) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    int d = b.getInt(16);
    boolean int8 = b.getInt(20) == 2;
    int n = (int) b.getLong(24);
    int embeddings = (int) b.getLong(40);
    int scales = (int) b.getLong(48);
    int mean = (int) b.getLong(216);
    double meanScore = 0;
    for (int j = 0; int8 && j < d; j++) {
      meanScore += (double) b.getFloat(mean + 4 * j) * query[j];
    }
    int offsets = (int) b.getLong(64);
    int ids = (int) b.getLong(72);
    List<Scored> all = new ArrayList<>();
    for (int r = 0; r < n; r++) {
      double sum = 0;
      for (int j = 0; j < d; j++) {
        double element = int8 ? b.get(embeddings + r * d + j) : Half.toFloat(b.getShort(embeddings + 2 * (r * d + j)));
        sum += element * query[j];
      }
      float score = (float) (int8 ? meanScore + b.getFloat(scales + 4 * r) * sum : sum);
      int start = (int) b.getLong(offsets + 8 * r);
      int end = (int) b.getLong(offsets + 8 * (r + 1));
      all.add(new Scored(new String(b.array(), ids + start, end - start, StandardCharsets.UTF_8), score));
    }
    all.sort(Comparator.comparing((Scored s) -> -s.score()).thenComparing(s -> s.id().getBytes(StandardCharsets.UTF_8),
        java.util.Arrays::compareUnsigned));
    return all;
  }

  private static void assertSame(List<Scored> expected, List<IndexSearcher.Hit> actual, int k) {
    assertEquals(Math.min(k, expected.size()), actual.size());
    for (int i = 0; i < actual.size(); i++) {
      assertEquals(expected.get(i).id(), actual.get(i).id(), "rank " + i);
      assertEquals(expected.get(i).score(), actual.get(i).score(), 0f, "rank " + i);
    }
  }

  @Test
  void equalsBruteForceForBothTypes() throws IOException {
    SplittableRandom random = new SplittableRandom(5);
    for (ElementType type : ElementType.values()) {
      for (int d : new int[] {3, 16, 130}) {
        Path file = TestIndexes.write(folder.resolve(type + "_" + d), type, d, TestIndexes.rows(700, d, type, d));
        IndexSearcher searcher = new IndexSearcher(IndexFile.load(file));
        float[][] centres = TestIndexes.centres(random, 5, d);
        for (int q = 0; q < 10; q++) {
          float[] query = TestIndexes.vector(random, d, centres);
          List<Scored> expected = reference(file, query);
          for (int k : new int[] {1, 10, 699, 700, 5000}) {
            assertSame(expected, searcher.search(query, k), k);
          }
        }
      }
    }
  }

  /**
   * Rows sharing a large common component, as CLIP's do (the cosine of two rows about 0.9): the mean term
   * dot(mu, query) dominates every score, and the integer pass must still find exactly the brute-force ranking.
   */
  @Test
  void equalsBruteForceWhenRowsShareACommonComponent() throws IOException {
    int d = 64;
    SplittableRandom random = new SplittableRandom(11);
    float[] common = TestIndexes.centres(random, 1, d)[0];
    float[][] centres = TestIndexes.centres(random, 5, d);
    List<float[]> vectors = new ArrayList<>();
    List<byte[]> hashes = new ArrayList<>();
    for (int i = 0; i < 500; i++) {
      float[] near = TestIndexes.vector(random, d, centres);
      float[] v = new float[d];
      for (int j = 0; j < d; j++) {
        v[j] = common[j] + 0.3f * near[j];
      }
      vectors.add(TestIndexes.vector(random, d, new float[][] {v}));
      hashes.add(new byte[16]);
    }
    Path file = TestIndexes.write(folder.resolve("common"), ElementType.INT8, d,
        TestIndexes.encode(vectors, hashes, ElementType.INT8, d));
    IndexSearcher searcher = new IndexSearcher(IndexFile.load(file));
    for (int q = 0; q < 10; q++) {
      float[] query = vectors.get(random.nextInt(vectors.size()));
      List<Scored> expected = reference(file, query);
      assertTrue(expected.get(0).score() > 0.99f && expected.get(499).score() > 0.5f, "a common component");
      for (int k : new int[] {1, 10, 500}) {
        assertSame(expected, searcher.search(query, k), k);
      }
    }
  }

  @Test
  void equalScoresAreOrderedById() throws IOException {
    // Identical embeddings under different ids (the same photo copied) and a negative-zero score.
    float[] embedding = {0.6f, 0.8f, 0f, 0f};
    float[] orthogonal = {0f, 0f, 1f, 0f};
    String[] ids = {"a/1.jpg", "a/2.jpg", "b.jpg", "c.jpg", "z.jpg", "é.jpg"};
    List<float[]> vectors = new ArrayList<>();
    for (String id : ids) {
      vectors.add(id.startsWith("c") || id.startsWith("z") ? orthogonal : embedding);
    }
    float[] mean = IndexRow.mean(vectors, 4);
    List<IndexRow> rows = new ArrayList<>();
    for (int i = 0; i < ids.length; i++) {
      rows.add(IndexRow.encode(ids[i], new byte[16], vectors.get(i), ElementType.INT8, mean));
    }
    Path file = TestIndexes.write(folder.resolve("ties"), ElementType.INT8, 4, new TestIndexes.Rows(mean, rows));
    IndexSearcher searcher = new IndexSearcher(IndexFile.load(file));
    float[] query = {0.6f, 0.8f, -0f, 0f};
    List<IndexSearcher.Hit> hits = searcher.search(query, 6);
    assertEquals(List.of("a/1.jpg", "a/2.jpg", "b.jpg", "é.jpg", "c.jpg", "z.jpg"),
        hits.stream().map(IndexSearcher.Hit::id).collect(java.util.stream.Collectors.toList()));
    assertSame(reference(file, query), hits, 6);
  }

  @Test
  void badQueriesAreRefused() throws IOException {
    Path file = TestIndexes.write(folder.resolve("q"), ElementType.INT8, 4,
        TestIndexes.rows(3, 4, ElementType.INT8, 1));
    IndexSearcher searcher = new IndexSearcher(IndexFile.load(file));
    assertThrows(IllegalArgumentException.class, () -> searcher.search(new float[5], 1));
    assertThrows(IllegalArgumentException.class, () -> searcher.search(new float[4], 1));
    assertThrows(IllegalArgumentException.class, () -> searcher.search(new float[] {Float.NaN, 0, 0, 1}, 1));
    assertThrows(IllegalArgumentException.class, () -> searcher.search(new float[] {1, 0, 0, 0}, 0));
  }
}
