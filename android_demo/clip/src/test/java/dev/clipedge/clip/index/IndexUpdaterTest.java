package dev.clipedge.clip.index;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Incremental updates over real files. The embedder stands in for the image encoder (its output is a function
 * of the file's bytes); what is under test is which files the updater embeds, keeps and removes, and what the
 * written index holds.
 */
class IndexUpdaterTest {
  static final int D = 8;
  @TempDir Path folder;


  /** A unit vector from the SHA-256 of the bytes; files starting with "bad" are unreadable. Counts its calls. */
  static final class ContentEmbedder implements IndexUpdater.Embedder {
    final List<String> embedded = new ArrayList<>();

    @Override
    public float[] embed(IndexUpdater.Photo photo) throws IndexUpdater.Unreadable {
      try {
        byte[] bytes = Files.readAllBytes(Path.of(photo.id()));
        if (new String(bytes, StandardCharsets.UTF_8).startsWith("bad")) {
          throw new IndexUpdater.Unreadable("not an image");
        }
        embedded.add(Path.of(photo.id()).getFileName().toString());
        return of(bytes);
      } catch (IOException e) {
        throw new IndexUpdater.Unreadable(e.getMessage());
      }
    }

    static float[] of(byte[] bytes) {
      try {
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(bytes);
        float[] v = new float[D];
        double squares = 0;
        for (int j = 0; j < D; j++) {
          v[j] = digest[j] + 0.5f;
          squares += v[j] * v[j];
        }
        for (int j = 0; j < D; j++) {
          v[j] = (float) (v[j] / Math.sqrt(squares));
        }
        return v;
      } catch (java.security.NoSuchAlgorithmException e) {
        throw new IllegalStateException(e);
      }
    }
  }

  static final IndexUpdater.Progress QUIET = new IndexUpdater.Progress() {
    @Override
    public void photo(int done, int total, int embedded) {}

    @Override
    public void skipped(String id, String reason) {}
  };

  private List<IndexUpdater.FilePhoto> photos(Path dir) throws IOException {
    try (Stream<Path> files = Files.list(dir)) {
      return files.sorted().map(IndexUpdater.FilePhoto::new).collect(Collectors.toList());
    }
  }

  private IndexUpdater.Summary update(Path index, Path photos, ContentEmbedder embedder) throws IOException {
    return new IndexUpdater(index, TestIndexes.MODEL, ElementType.INT8, D)
        .update(photos(photos), id -> Files.exists(Path.of(id)), embedder, QUIET);
  }

  private static List<String> ids(IndexFile index) {
    List<String> ids = new ArrayList<>();
    for (int r = 0; r < index.count(); r++) {
      ids.add(Path.of(index.id(r)).getFileName().toString());
    }
    return ids;
  }

  @Test
  void addChangeDeleteEmbedOnlyWhatChanged() throws IOException {
    Path photos = Files.createDirectory(folder.resolve("photos"));
    Path index = folder.resolve("photos.clipidx");
    Files.writeString(photos.resolve("a.jpg"), "apple");
    Files.writeString(photos.resolve("b.jpg"), "banana");
    Files.writeString(photos.resolve("c.jpg"), "bad bytes");
    ContentEmbedder first = new ContentEmbedder();
    IndexUpdater.Summary summary = update(index, photos, first);
    assertEquals(List.of("a.jpg", "b.jpg"), first.embedded);
    assertEquals(new IndexUpdater.Summary(2, 2, 0, 0, 0, summary.skipped()), summary);
    assertEquals(List.of(new IndexUpdater.Skipped(photos.resolve("c.jpg").toString(), "not an image")),
        summary.skipped());
    IndexFile written = IndexFile.load(index);
    assertEquals(List.of("a.jpg", "b.jpg"), ids(written));
    // A new index: the mean of its rows, as a file written from scratch has.
    float[] mean = IndexRow.mean(List.of(ContentEmbedder.of("apple".getBytes()),
        ContentEmbedder.of("banana".getBytes())), D);
    assertArrayEquals(mean, written.mean());
    assertArrayEquals(IndexRow.encode("a", new byte[16], ContentEmbedder.of("apple".getBytes()), ElementType.INT8,
        mean).elements(), written.row(0).elements());
    assertArrayEquals(Arrays.copyOf(sha256("apple"), 16), written.contentHash(0));

    long modified = Files.getLastModifiedTime(index).toMillis();
    ContentEmbedder again = new ContentEmbedder();
    IndexUpdater.Summary same = update(index, photos, again);
    assertEquals(List.of(), again.embedded);
    assertEquals(List.of(2, 0, 0, 2, 0, 1), List.of(same.rows(), same.added(), same.changed(), same.unchanged(),
        same.removed(), same.skipped().size()));
    assertEquals(modified, Files.getLastModifiedTime(index).toMillis()); // nothing changed: not rewritten

    Files.writeString(photos.resolve("b.jpg"), "blueberry");
    Files.delete(photos.resolve("a.jpg"));
    Files.writeString(photos.resolve("0.jpg"), "orange");
    ContentEmbedder third = new ContentEmbedder();
    IndexUpdater.Summary changed = update(index, photos, third);
    assertEquals(List.of("0.jpg", "b.jpg"), third.embedded);
    assertEquals(List.of(2, 1, 1, 0, 1), List.of(changed.rows(), changed.added(), changed.changed(),
        changed.unchanged(), changed.removed()));
    IndexFile after = IndexFile.load(index);
    assertEquals(List.of("0.jpg", "b.jpg"), ids(after));
    assertArrayEquals(Arrays.copyOf(sha256("blueberry"), 16), after.contentHash(1));
    // Rows were kept and none is: the first mean stays, and the new rows are codes against it.
    assertArrayEquals(mean, after.mean());
    assertArrayEquals(IndexRow.encode("b", new byte[16], ContentEmbedder.of("blueberry".getBytes()), ElementType.INT8,
        mean).elements(), after.row(1).elements());
  }

  /** An index left with no rows takes the mean of the next rows it gets: nothing is quantised against the old one. */
  @Test
  void anEmptiedIndexTakesTheMeanOfItsNextRows() throws IOException {
    Path photos = Files.createDirectory(folder.resolve("photos"));
    Path index = folder.resolve("photos.clipidx");
    Files.writeString(photos.resolve("a.jpg"), "apple");
    update(index, photos, new ContentEmbedder());
    Files.delete(photos.resolve("a.jpg"));
    assertEquals(1, update(index, photos, new ContentEmbedder()).removed());
    assertEquals(0, IndexFile.load(index).count());
    Files.writeString(photos.resolve("c.jpg"), "cherry");
    Files.writeString(photos.resolve("d.jpg"), "date");
    update(index, photos, new ContentEmbedder());
    float[] mean = IndexRow.mean(List.of(ContentEmbedder.of("cherry".getBytes()),
        ContentEmbedder.of("date".getBytes())), D);
    assertArrayEquals(mean, IndexFile.load(index).mean());
    assertFalse(Arrays.equals(mean, IndexRow.mean(List.of(ContentEmbedder.of("apple".getBytes())), D)));
  }

  @Test
  void rowsOfOtherFoldersStayWhileTheirFilesExist() throws IOException {
    Path one = Files.createDirectory(folder.resolve("one"));
    Path two = Files.createDirectory(folder.resolve("two"));
    Path index = folder.resolve("all.clipidx");
    Files.writeString(one.resolve("x.png"), "x");
    Files.writeString(two.resolve("y.png"), "y");
    update(index, one, new ContentEmbedder());
    update(index, two, new ContentEmbedder());
    assertEquals(List.of("x.png", "y.png"), ids(IndexFile.load(index)));
    Files.delete(one.resolve("x.png"));
    IndexUpdater.Summary summary = update(index, two, new ContentEmbedder());
    assertEquals(1, summary.removed());
    assertEquals(List.of("y.png"), ids(IndexFile.load(index)));
  }

  @Test
  void anotherModelsIndexIsRefusedNamingBoth() throws IOException {
    Path photos = Files.createDirectory(folder.resolve("p"));
    Files.writeString(photos.resolve("a.jpg"), "a");
    Path index = folder.resolve("i.clipidx");
    update(index, photos, new ContentEmbedder());
    Fingerprint other = new Fingerprint(TestIndexes.filled(32, 9), "dynamic_int8", "small");
    IndexException e = assertThrows(IndexException.class, () -> new IndexUpdater(index, other, ElementType.INT8, D)
        .update(photos(photos), id -> true, new ContentEmbedder(), QUIET));
    assertTrue(e.getMessage().contains(TestIndexes.MODEL.toString()) && e.getMessage().contains(other.toString()),
        e.getMessage());
    IndexException type = assertThrows(IndexException.class, () -> new IndexUpdater(index, TestIndexes.MODEL,
        ElementType.FLOAT16, D).update(photos(photos), id -> true, new ContentEmbedder(), QUIET));
    assertTrue(type.getMessage().contains("int8"), type.getMessage());
  }

  /**
   * A writer killed (SIGKILL) after its new file is complete and synced but before the rename: the previous
   * index is whole, and the next update succeeds and removes the leftover FILE.tmp-PID.
   */
  @Test
  void killedWriterLeavesThePreviousIndex() throws Exception {
    Path photos = Files.createDirectory(folder.resolve("photos"));
    Path index = folder.resolve("photos.clipidx");
    Files.writeString(photos.resolve("a.jpg"), "apple");
    update(index, photos, new ContentEmbedder());
    byte[] before = Files.readAllBytes(index);
    Files.writeString(photos.resolve("b.jpg"), "banana");

    String classpath = System.getProperty("java.class.path");
    Process child = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
        classpath, KilledWriter.class.getName(), index.toString(), photos.toString())
        .redirectErrorStream(true).start();
    String line = new String(child.getInputStream().readNBytes("renaming".length()), StandardCharsets.UTF_8);
    assertEquals("renaming", line);
    child.destroyForcibly();
    assertTrue(child.waitFor(30, TimeUnit.SECONDS));
    List<Path> leftovers;
    try (Stream<Path> files = Files.list(folder)) {
      leftovers = files.filter(p -> p.getFileName().toString().startsWith("photos.clipidx.tmp-"))
          .collect(Collectors.toList());
    }
    assertEquals(1, leftovers.size());
    assertArrayEquals(before, Files.readAllBytes(index));
    assertEquals(1, IndexFile.load(index).count());

    IndexUpdater.Summary summary = update(index, photos, new ContentEmbedder());
    assertEquals(2, summary.rows());
    assertFalse(Files.exists(leftovers.get(0)));
    assertEquals(List.of("a.jpg", "b.jpg"), ids(IndexFile.load(index)));
  }

  /** The child of {@link #killedWriterLeavesThePreviousIndex}: updates, then waits to be killed before renaming. */
  public static final class KilledWriter {
    public static void main(String[] args) throws Exception {
      IndexWriter.beforeRename = () -> {
        System.out.print("renaming");
        System.out.flush();
        try {
          Thread.sleep(600_000);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      };
      Path photos = Path.of(args[1]);
      List<IndexUpdater.Photo> list = new ArrayList<>();
      for (File file : photos.toFile().listFiles()) {
        list.add(new IndexUpdater.FilePhoto(file.toPath()));
      }
      list.sort(java.util.Comparator.comparing(IndexUpdater.Photo::id));
      new IndexUpdater(Path.of(args[0]), TestIndexes.MODEL, ElementType.INT8, D)
          .update(list, id -> true, new ContentEmbedder(), QUIET);
    }
  }

  private static byte[] sha256(String text) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
