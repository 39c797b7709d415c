package dev.clipedge.clip.index;

/**
 * A corrupt, truncated or foreign index file, an index made by another model than the query's, or an index that
 * cannot be written; the message is one line naming the file and the problem.
 */
public final class IndexException extends RuntimeException {
  public IndexException(String message) {
    super(message);
  }
}
