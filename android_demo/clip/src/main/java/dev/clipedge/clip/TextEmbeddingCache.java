package dev.clipedge.clip;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * A bounded least-recently-used cache of text embeddings keyed by the exact text, so that the label prompts of
 * repeated zero-shot queries are encoded once. Thread-safe: lookups and insertions hold one lock; the encoder
 * runs outside it, so a slow encode does not block other threads (two threads missing the same text at once
 * may both encode it; the results are equal and the later one is kept). Embeddings are copied in and out, so
 * callers cannot change what the cache holds.
 */
public final class TextEmbeddingCache {
  private final int capacity;
  private final LinkedHashMap<String, float[]> entries;

  public TextEmbeddingCache(int capacity) {
    if (capacity <= 0) {
      throw new IllegalArgumentException("cache capacity must be positive, got " + capacity);
    }
    this.capacity = capacity;
    // Access order: get() moves an entry to the end, so the eldest entry is the least recently used.
    this.entries = new LinkedHashMap<>(16, 0.75f, true) {
      @Override
      protected boolean removeEldestEntry(Map.Entry<String, float[]> eldest) {
        return size() > TextEmbeddingCache.this.capacity;
      }
    };
  }

  public int capacity() {
    return capacity;
  }

  /** The cached embedding of `text`, or null. */
  public float[] getIfPresent(String text) {
    synchronized (entries) {
      float[] embedding = entries.get(text);
      return embedding == null ? null : embedding.clone();
    }
  }

  public void put(String text, float[] embedding) {
    if (text == null || embedding == null) {
      throw new IllegalArgumentException("cache keys and embeddings must not be null");
    }
    float[] copy = embedding.clone();
    synchronized (entries) {
      entries.put(text, copy);
    }
  }

  /** The cached embedding, else `encoder.apply(text)`, which is then cached. */
  public float[] get(String text, Function<String, float[]> encoder) {
    float[] cached = getIfPresent(text);
    if (cached != null) {
      return cached;
    }
    float[] embedding = encoder.apply(text);
    put(text, embedding);
    return embedding.clone();
  }

  public int size() {
    synchronized (entries) {
      return entries.size();
    }
  }
}
