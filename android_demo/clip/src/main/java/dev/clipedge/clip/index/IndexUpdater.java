package dev.clipedge.clip.index;

import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Predicate;

/**
 * Brings an index up to date with a collection of photos: a photo whose id and content hash (the first 16 bytes
 * of the SHA-256 of its bytes) are already in the index keeps its row as stored; new and changed photos are
 * embedded; rows of photos that are gone are removed. The new index is written beside the old one and renamed
 * over it ({@link IndexWriter}), so a kill loses only the work of this run.
 *
 * <p>int8 rows are differences from the index's mean (docs/device_index.md): an update that keeps rows of the
 * existing file quantises the new ones against that file's mean, which their codes were made against; only a
 * new index, or one with no rows, takes the mean of the rows it gets, so it equals a file written from scratch.
 * Until then the new rows' float32 embeddings are held (4 D bytes per new row: 200 MB for a first update of
 * 100,000 photos of 512; an incremental update holds only what it adds).
 *
 * <p>Platform-neutral: the desktop lists files, Android lists MediaStore content URIs; both give {@link Photo}s
 * and an {@link Embedder}. One update at a time per index: FILE.lock is held for the whole update, and
 * FILE.tmp-* left by a killed update are deleted under it.
 */
public final class IndexUpdater {
  /** One photo of the collection: its id (a path or a content URI) and its bytes. */
  public interface Photo {
    String id();

    InputStream open() throws IOException;
  }

  /** A photo in a file (the desktop's case; an app's photos are content URIs); its id is the path as given. */
  public record FilePhoto(Path path) implements Photo {
    @Override
    public String id() {
      return path.toString();
    }

    @Override
    public InputStream open() throws IOException {
      return Files.newInputStream(path);
    }
  }

  /** A photo's L2-normalised embedding; an unreadable photo throws {@link Unreadable}. */
  public interface Embedder {
    float[] embed(Photo photo) throws Unreadable;
  }

  /** A photo that cannot be decoded or read: listed in the summary and skipped, not fatal. */
  public static final class Unreadable extends Exception {
    public Unreadable(String message) {
      super(message);
    }
  }

  /** What an update reports as it goes. */
  public interface Progress {
    /** {@code done} of {@code total} photos looked at (hashed, and embedded when new or changed). */
    void photo(int done, int total, int embedded);

    void skipped(String id, String reason);
  }

  public record Skipped(String id, String reason) {}

  public record Summary(int rows, int added, int changed, int unchanged, int removed, List<Skipped> skipped) {}

  /** A new or changed photo's content hash and embedding, held until the mean its row is encoded against is known. */
  private record Embedded(byte[] hash, float[] embedding) {}

  private final Path file;
  private final Fingerprint fingerprint;
  private final ElementType type;
  private final int dimension;

  /** Updates {@code file} with rows made by the model {@code fingerprint}, of {@code dimension} elements. */
  public IndexUpdater(Path file, Fingerprint fingerprint, ElementType type, int dimension) {
    this.file = file;
    this.fingerprint = fingerprint;
    this.type = type;
    this.dimension = dimension;
  }

  /**
   * {@code photos}: the collection as listed now (duplicate ids count once). Rows of the index whose id is not
   * listed are kept when {@code keepUnlisted} says the photo still exists (a file outside the folders indexed
   * this time), else removed.
   */
  public Summary update(List<? extends Photo> photos, Predicate<String> keepUnlisted, Embedder embedder,
      Progress progress) throws IOException {
    Path lockFile = file.resolveSibling(file.getFileName() + ".lock");
    try (FileChannel lockChannel = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
         FileLock lock = lockChannel.tryLock()) {
      if (lock == null) {
        throw new IndexException(file + " is being updated by another process (" + lockFile + " is locked)");
      }
      deleteLeftovers();
      return updateLocked(photos, keepUnlisted, embedder, progress);
    }
  }

  private Summary updateLocked(List<? extends Photo> photos, Predicate<String> keepUnlisted, Embedder embedder,
      Progress progress) throws IOException {
    IndexFile old = Files.exists(file) ? IndexFile.load(file) : null;
    if (old != null) {
      checkCompatible(old);
    }
    Map<byte[], IndexRow> rows = new TreeMap<>(Arrays::compareUnsigned);
    Map<String, Embedded> embeddings = new HashMap<>();
    List<Skipped> skipped = new ArrayList<>();
    int added = 0;
    int changed = 0;
    int unchanged = 0;
    int embedded = 0;
    Set<String> seen = new HashSet<>();
    Set<String> unreadable = new HashSet<>();
    for (int i = 0; i < photos.size(); i++) {
      Photo photo = photos.get(i);
      byte[] id = photo.id().getBytes(StandardCharsets.UTF_8);
      if (!seen.add(photo.id())) {
        continue;
      }
      String problem = idProblem(id);
      byte[] hash = null;
      if (problem == null) {
        try {
          hash = contentHash(photo);
        } catch (IOException e) {
          problem = "cannot read: " + e.getMessage();
        }
      }
      int oldRow = old == null ? -1 : old.rowOf(id);
      if (problem == null && oldRow >= 0 && Arrays.equals(old.contentHash(oldRow), hash)) {
        rows.put(id, old.row(oldRow));
        unchanged++;
      } else if (problem == null) {
        try {
          embeddings.put(photo.id(), new Embedded(hash, embedder.embed(photo))); // encoded once the mean is known
          embedded++;
          if (oldRow >= 0) {
            changed++;
          } else {
            added++;
          }
        } catch (Unreadable e) {
          problem = e.getMessage();
        }
      }
      if (problem != null) { // an unreadable photo has no row, even if an older version of it had one
        skipped.add(new Skipped(photo.id(), problem));
        unreadable.add(photo.id());
        progress.skipped(photo.id(), problem);
      }
      progress.photo(i + 1, photos.size(), embedded);
    }
    int removed = 0;
    for (int r = 0; old != null && r < old.count(); r++) {
      String id = old.id(r);
      if (seen.contains(id) && !unreadable.contains(id)) {
        continue; // listed and readable: its row is in `rows` already
      }
      if (!unreadable.contains(id) && keepUnlisted.test(id)) {
        rows.put(id.getBytes(StandardCharsets.UTF_8), old.row(r));
      } else {
        removed++;
      }
    }
    float[] mean = null;
    if (type == ElementType.INT8 && old != null && old.count() > 0) {
      mean = old.mean(); // the kept rows' codes are differences from it
    } else if (type == ElementType.INT8) { // every row is new: the mean of them all, as a fresh build takes
      List<float[]> vectors = new ArrayList<>();
      for (Embedded photoEmbedding : embeddings.values()) {
        vectors.add(photoEmbedding.embedding());
      }
      mean = IndexRow.mean(vectors, dimension);
    }
    for (Map.Entry<String, Embedded> entry : embeddings.entrySet()) {
      String id = entry.getKey();
      rows.put(id.getBytes(StandardCharsets.UTF_8), IndexRow.encode(id, entry.getValue().hash(),
          entry.getValue().embedding(), type, mean));
    }
    if (old == null || added + changed + removed > 0) {
      IndexWriter.write(file, fingerprint, type, dimension, mean, new ArrayList<>(rows.values()));
    }
    return new Summary(rows.size(), added, changed, unchanged, removed, List.copyOf(skipped));
  }

  /** An index made by another model, or with other elements, cannot take this model's rows. */
  private void checkCompatible(IndexFile old) {
    if (!old.fingerprint().sameModel(fingerprint)) {
      throw new IndexException(file + " holds rows made by " + old.fingerprint() + ", not by " + fingerprint
          + "; index into a new file");
    }
    if (old.elementType() != type || old.dimension() != dimension) {
      throw new IndexException(file + " holds " + old.dimension() + " " + old.elementType().label()
          + " elements per row, not " + dimension + " " + type.label() + "; index into a new file");
    }
  }

  private static String idProblem(byte[] id) {
    if (id.length < 1 || id.length > IndexFormat.MAX_ID_BYTES) {
      return "its id has " + id.length + " bytes in UTF-8; an index takes 1 to " + IndexFormat.MAX_ID_BYTES;
    }
    for (byte b : id) {
      if (b == 0) {
        return "its id has a zero byte";
      }
    }
    return null;
  }

  /** The first 16 bytes of the SHA-256 of the photo's bytes, read in blocks. */
  static byte[] contentHash(Photo photo) throws IOException {
    MessageDigest digest;
    try {
      digest = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    byte[] block = new byte[1 << 16];
    try (InputStream in = photo.open()) {
      for (int n; (n = in.read(block)) > 0; ) {
        digest.update(block, 0, n);
      }
    }
    return Arrays.copyOf(digest.digest(), IndexFormat.HASH_BYTES);
  }

  /** FILE.tmp-* of updates that were killed (no other update runs: we hold the lock). */
  private void deleteLeftovers() throws IOException {
    Path folder = file.toAbsolutePath().getParent();
    String prefix = file.getFileName() + ".tmp-";
    try (DirectoryStream<Path> leftovers = Files.newDirectoryStream(folder,
        path -> path.getFileName().toString().startsWith(prefix))) {
      for (Path leftover : leftovers) {
        Files.deleteIfExists(leftover);
      }
    }
  }
}
