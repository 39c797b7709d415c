package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class ZeroShotTest {
  @Test
  void normaliseAndCosine() {
    assertArrayEquals(new float[] {0.6f, 0.8f}, Embeddings.l2Normalize(new float[] {3, 4}), 1e-7f);
    assertEquals(0.0, Embeddings.cosine(new float[] {1, 0}, new float[] {0, 5}), 1e-12);
    assertEquals(-1.0, Embeddings.cosine(new float[] {1, 2}, new float[] {-2, -4}), 1e-12);
    assertEquals(Math.sqrt(0.5), Embeddings.cosine(new float[] {1, 1}, new float[] {3, 0}), 1e-12);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Embeddings.l2Normalize(new float[] {0, 0, 0}));
    assertTrue(e.getMessage().contains("zero vector"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> Embeddings.l2Normalize(new float[] {Float.NaN, 1}));
    assertThrows(IllegalArgumentException.class, () -> Embeddings.cosine(new float[] {0, 0}, new float[] {1, 0}));
    assertThrows(IllegalArgumentException.class, () -> Embeddings.dot(new float[2], new float[3]));
  }

  @Test
  void logitScaleMustBePositiveAndFinite() {
    assertThrows(IllegalArgumentException.class, () -> new ZeroShot(0));
    assertThrows(IllegalArgumentException.class, () -> new ZeroShot(Double.POSITIVE_INFINITY));
  }

  @Test
  void logitsAreScaledCosines() {
    ZeroShot zeroShot = new ZeroShot(100);
    double[] logits = zeroShot.logits(new float[] {2, 0}, List.of(new float[] {1, 0}, new float[] {1, 1},
        new float[] {0, -3}));
    assertArrayEquals(new double[] {100, 100 * Math.sqrt(0.5), 0}, logits, 1e-5);
  }

  @Test
  void softmaxSumsToOneAndSurvivesLargeLogits() {
    double[] p = ZeroShot.softmax(new double[] {1, 2, 3});
    double e = Math.E;
    double total = 1 + e + e * e;
    assertArrayEquals(new double[] {1 / total, e / total, e * e / total}, p, 1e-12);
    // exp(1000) overflows a double: without subtracting the maximum this would be NaN.
    double[] large = ZeroShot.softmax(new double[] {1000, 1001, -1000});
    assertArrayEquals(new double[] {1 / (1 + e), e / (1 + e), 0}, large, 1e-12);
    assertEquals(1.0, large[0] + large[1] + large[2], 1e-12);
    assertArrayEquals(new double[] {0.25, 0.25, 0.25, 0.25}, ZeroShot.softmax(new double[] {7, 7, 7, 7}), 0);
    assertThrows(IllegalArgumentException.class, () -> ZeroShot.softmax(new double[0]));
    assertThrows(IllegalArgumentException.class, () -> ZeroShot.softmax(new double[] {1, Double.NaN}));
  }

  @Test
  void topKIsOrderedAndStableOnTies() {
    double[] scores = {0.1, 0.5, 0.3, 0.5, 0.9, 0.3};
    assertArrayEquals(new int[] {4, 1, 3, 2, 5}, ZeroShot.topK(scores, 5));
    assertArrayEquals(new int[] {4, 1, 3, 2, 5, 0}, ZeroShot.topK(scores, 10));
    assertArrayEquals(new int[0], ZeroShot.topK(scores, 0));
    assertThrows(IllegalArgumentException.class, () -> ZeroShot.topK(scores, -1));
  }

  @Test
  void rankGivesLabelsWithProbabilities() {
    ZeroShot zeroShot = new ZeroShot(10);
    List<ZeroShot.LabelScore> ranking = zeroShot.rank(new float[] {1, 0},
        List.of("dog", "cat", "car"), List.of(new float[] {0, 1}, new float[] {1, 0}, new float[] {-1, 0}), 2);
    assertEquals(2, ranking.size());
    assertEquals("cat", ranking.get(0).label());
    assertEquals(1, ranking.get(0).index());
    assertEquals(10.0, ranking.get(0).logit(), 1e-6);
    double total = Math.exp(10) + Math.exp(0) + Math.exp(-10);
    assertEquals(Math.exp(10) / total, ranking.get(0).probability(), 1e-9);
    assertEquals("dog", ranking.get(1).label());
    assertEquals(1 / total, ranking.get(1).probability(), 1e-9);
    assertThrows(IllegalArgumentException.class,
        () -> zeroShot.rank(new float[] {1, 0}, List.of("a"), List.of(), 1));
  }

  @Test
  void cacheEvictsTheLeastRecentlyUsed() {
    TextEmbeddingCache cache = new TextEmbeddingCache(2);
    AtomicInteger encodes = new AtomicInteger();
    java.util.function.Function<String, float[]> encoder = text -> {
      encodes.incrementAndGet();
      return new float[] {text.length()};
    };
    cache.get("a", encoder);
    cache.get("bb", encoder);
    cache.get("a", encoder); // hit; "bb" is now the least recently used
    assertEquals(2, encodes.get());
    cache.get("ccc", encoder); // evicts "bb"
    assertEquals(2, cache.size());
    assertNull(cache.getIfPresent("bb"));
    assertArrayEquals(new float[] {1}, cache.getIfPresent("a"));
    assertArrayEquals(new float[] {3}, cache.getIfPresent("ccc"));
    cache.get("bb", encoder);
    assertEquals(4, encodes.get());
    assertThrows(IllegalArgumentException.class, () -> new TextEmbeddingCache(0));
  }

  @Test
  void cacheHandsOutCopies() {
    TextEmbeddingCache cache = new TextEmbeddingCache(4);
    float[] embedding = {1, 2};
    cache.put("x", embedding);
    embedding[0] = 99;
    float[] out = cache.getIfPresent("x");
    assertArrayEquals(new float[] {1, 2}, out);
    out[1] = 99;
    assertArrayEquals(new float[] {1, 2}, cache.getIfPresent("x"));
    assertNotSame(cache.getIfPresent("x"), cache.getIfPresent("x"));
  }

  @Test
  void cacheIsSafeUnderConcurrentUse() throws Exception {
    TextEmbeddingCache cache = new TextEmbeddingCache(50);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    List<Future<?>> futures = new ArrayList<>();
    for (int t = 0; t < 4; t++) {
      int seed = t;
      futures.add(pool.submit(() -> {
        for (int i = 0; i < 20_000; i++) {
          String text = "label " + ((i * 31 + seed) % 120);
          float[] value = cache.get(text, s -> new float[] {s.hashCode()});
          assertEquals(text.hashCode(), value[0]);
        }
      }));
    }
    for (Future<?> future : futures) {
      future.get(60, TimeUnit.SECONDS);
    }
    pool.shutdown();
    assertEquals(50, cache.size());
  }
}
