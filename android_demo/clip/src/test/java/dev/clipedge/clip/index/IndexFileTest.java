package dev.clipedge.clip.index;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The file format: bytes as docs/device_index.md lays them out, round trips, and every way a file can be bad. */
class IndexFileTest {
  @TempDir Path folder;

  @Test
  void headerAndSectionsAreWhereTheDocumentSays() throws IOException {
    int n = 3;
    int d = 5;
    TestIndexes.Rows rows = TestIndexes.rows(n, d, ElementType.INT8, 1);
    Path file = TestIndexes.write(folder.resolve("a.clipidx"), ElementType.INT8, d, rows);
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    assertArrayEquals("CLIPIDX\0".getBytes(StandardCharsets.US_ASCII), Arrays.copyOf(b.array(), 8));
    assertEquals(1, b.getInt(8));
    assertEquals(256, b.getInt(12));
    assertEquals(d, b.getInt(16));
    assertEquals(2, b.getInt(20));
    assertEquals(n, b.getLong(24));
    // embeddings 256..271, scales at 320 (12 bytes), mean at 384 (20), hashes at 448 (48), id offsets at 512
    // (32), ids at 576.
    assertEquals(256, b.getLong(40));
    assertEquals(320, b.getLong(48));
    assertEquals(448, b.getLong(56));
    assertEquals(512, b.getLong(64));
    assertEquals(576, b.getLong(72));
    long idLength = rows.list().stream().mapToLong(r -> r.id().length).sum();
    assertEquals(idLength, b.getLong(80));
    assertEquals(576 + idLength, b.getLong(32));
    assertEquals(576 + idLength, b.capacity());
    assertEquals(384, b.getLong(216));
    for (int j = 0; j < d; j++) {
      assertEquals(rows.mean()[j], b.getFloat(384 + 4 * j));
    }
    assertArrayEquals(TestIndexes.filled(32, 7), Arrays.copyOfRange(b.array(), 88, 120));
    assertEquals("dynamic_int8", new String(b.array(), 120, 12, StandardCharsets.US_ASCII));
    assertEquals("small", new String(b.array(), 152, 5, StandardCharsets.UTF_8));
    CRC32 body = new CRC32();
    body.update(b.array(), 256, b.capacity() - 256);
    assertEquals((int) body.getValue(), b.getInt(248));
    CRC32 header = new CRC32();
    header.update(b.array(), 0, 252);
    assertEquals((int) header.getValue(), b.getInt(252));
    for (int i = 0; i < n; i++) {
      assertArrayEquals(rows.get(i).elements(), Arrays.copyOfRange(b.array(), 256 + d * i, 256 + d * (i + 1)));
      assertEquals(rows.get(i).scale(), b.getFloat(320 + 4 * i));
      assertArrayEquals(rows.get(i).contentHash(), Arrays.copyOfRange(b.array(), 448 + 16 * i, 464 + 16 * i));
    }
    assertEquals(0, b.getLong(512));
    assertEquals(idLength, b.getLong(512 + 8 * n));
    assertEquals("photo/00000.jpgphoto/00001.jpgphoto/00002.jpg",
        new String(b.array(), 576, (int) idLength, StandardCharsets.UTF_8));
  }

  @Test
  void int8RowsAreQuantisedAsDocumented() {
    // s = 0.8 / 127; 0.6 / s = 95.25 -> 95, -0.8 / s = -127, 0.0 -> 0 (worked by hand; a zero mean).
    IndexRow row = IndexRow.encode("x", new byte[16], new float[] {0.6f, -0.8f, 0f}, ElementType.INT8, new float[3]);
    assertEquals(0.8f / 127f, row.scale());
    assertArrayEquals(new byte[] {95, -127, 0}, row.elements());
    IndexRow zero = IndexRow.encode("z", new byte[16], new float[] {0.5f, 0f, 0f}, ElementType.INT8,
        new float[] {0.5f, 0f, 0f});
    assertEquals(1f, zero.scale()); // an all-zero difference from the mean
    assertArrayEquals(new byte[3], zero.elements());
    // float16 little-endian: 0.6 -> 0x38CD (0.60009765625), -0.8 -> 0xBA66.
    IndexRow half = IndexRow.encode("h", new byte[16], new float[] {0.6f, -0.8f}, ElementType.FLOAT16, null);
    assertArrayEquals(new byte[] {(byte) 0xCD, 0x38, 0x66, (byte) 0xBA}, half.elements());
  }

  /**
   * The mean and the int8 codes of three dyadic rows, worked by hand (tests/test_device_index.py checks the
   * Python writer against the same bits): S = 2^29 (1.5, 0, 0.5, 0.25), so mu = (0.5, 0, float32(1/6) =
   * 0x3E2AAAAB, float32(1/12) = 0x3DAAAAAB). Row 0's difference is (0.25, -0.5, 0.25 - mu_2, -mu_3): s =
   * float32(0.5 / 127) = 0x3B810204, slightly below 1/254, so 0.25 / s rounds in float32 to 63.5 exactly, a half
   * that rint takes to the even 64 (and -63.5 to -64 in row 1).
   */
  @Test
  void meanAndCodesOfAHandWorkedCase() {
    List<float[]> vectors = List.of(new float[] {0.75f, -0.5f, 0.25f, 0f}, new float[] {0.25f, 0.5f, -0.25f, 0.5f},
        new float[] {0.5f, 0f, 0.5f, -0.25f});
    float[] mean = IndexRow.mean(vectors, 4);
    assertArrayEquals(new int[] {0x3f000000, 0, 0x3e2aaaab, 0x3daaaaab},
        new int[] {bits(mean[0]), bits(mean[1]), bits(mean[2]), bits(mean[3])});
    // The same mean whatever the order of the rows (Java sums as photos come, Python by shard).
    assertArrayEquals(mean, IndexRow.mean(List.of(vectors.get(2), vectors.get(0), vectors.get(1)), 4));
    byte[][] codes = {{64, -127, 21, -21}, {-64, 127, -106, 106}, {0, 0, 127, -127}};
    int[] scales = {0x3b810204, 0x3b810204, 0x3b2c02b0};
    for (int i = 0; i < 3; i++) {
      IndexRow row = IndexRow.encode("r", new byte[16], vectors.get(i), ElementType.INT8, mean);
      assertArrayEquals(codes[i], row.elements(), "row " + i);
      assertEquals(scales[i], bits(row.scale()), "row " + i);
    }
    assertArrayEquals(new float[4], IndexRow.mean(List.of(), 4)); // no rows: a zero mean
  }

  private static int bits(float value) {
    return Float.floatToRawIntBits(value);
  }

  @Test
  void roundTripBothTypesAnyDimensionAndEmpty() throws IOException {
    for (ElementType type : ElementType.values()) {
      for (int d : new int[] {1, 7, 64}) {
        TestIndexes.Rows rows = TestIndexes.rows(20, d, type, d);
        Path file = TestIndexes.write(folder.resolve(type + "_" + d), type, d, rows);
        IndexFile index = IndexFile.load(file);
        assertEquals(20, index.count());
        assertEquals(d, index.dimension());
        assertEquals(type, index.elementType());
        assertTrue(index.fingerprint().sameModel(TestIndexes.MODEL));
        assertEquals("small", index.fingerprint().exportName());
        for (int i = 0; i < rows.list().size(); i++) {
          IndexRow back = index.row(i);
          assertArrayEquals(rows.get(i).id(), back.id());
          assertArrayEquals(rows.get(i).contentHash(), back.contentHash());
          assertArrayEquals(rows.get(i).elements(), back.elements());
          assertEquals(rows.get(i).scale(), back.scale());
          assertEquals(i, index.rowOf(rows.get(i).id()));
        }
        assertArrayEquals(rows.mean(), index.mean());
        assertEquals(-1, index.rowOf("photo/99999.jpg".getBytes(StandardCharsets.UTF_8)));
        // Rewriting what was read gives the same bytes.
        List<IndexRow> read = java.util.stream.IntStream.range(0, 20).mapToObj(index::row)
            .collect(java.util.stream.Collectors.toList());
        Path again = TestIndexes.write(folder.resolve("again"), type, d, new TestIndexes.Rows(index.mean(), read));
        assertArrayEquals(Files.readAllBytes(file), Files.readAllBytes(again));
      }
    }
    IndexFile empty = IndexFile.load(TestIndexes.write(folder.resolve("empty"), ElementType.INT8, 512,
        TestIndexes.rows(0, 512, ElementType.INT8, 0)));
    assertEquals(0, empty.count());
    assertArrayEquals(new float[512], empty.mean());
    float[] query = new float[512];
    query[0] = 1;
    assertEquals(List.of(), new IndexSearcher(empty).search(query, 1));
  }

  private Path good() throws IOException {
    return TestIndexes.write(folder.resolve("good.clipidx"), ElementType.INT8, 4,
        TestIndexes.rows(3, 4, ElementType.INT8, 2));
  }

  private void refused(Consumer<ByteBuffer> edit, String expected) throws IOException {
    Path bad = TestIndexes.edited(good(), folder.resolve("bad.clipidx"), edit);
    IndexException e = assertThrows(IndexException.class, () -> IndexFile.load(bad));
    assertTrue(e.getMessage().startsWith(bad.toString()), e.getMessage());
    assertTrue(e.getMessage().contains(expected), e.getMessage());
  }

  @Test
  void everyHeaderFieldIsChecked() throws IOException {
    refused(b -> b.putInt(8, 2), "format version 2");
    refused(b -> b.putInt(12, 128), "header size 128");
    refused(b -> b.putInt(16, 0), "dimension 0");
    refused(b -> b.putInt(16, 4097), "dimension 4097");
    refused(b -> b.putInt(16, 64), "file size"); // the sections no longer end where the header says
    refused(b -> b.putInt(20, 3), "element type 3");
    refused(b -> b.putLong(24, 1L << 31), "row count 2147483648");
    refused(b -> b.putLong(24, -1), "row count 18446744073709551615");
    refused(b -> b.putLong(24, 2), "the last id offset is 30"); // same layout: the id offsets catch it
    refused(b -> b.putLong(32, b.getLong(32) + 1), "file size");
    refused(b -> b.putLong(40, 320), "embeddings offset 320, expected 256");
    refused(b -> b.putLong(48, 0), "scales offset 0");
    refused(b -> b.putLong(56, 384), "content-hash offset 384");
    refused(b -> b.putLong(216, 0), "mean offset 0, expected 384");
    refused(b -> b.putLong(64, 0), "id-offsets offset 0");
    refused(b -> b.putLong(72, 1), "id-bytes offset 1");
    refused(b -> b.putLong(80, 1L << 40), "id-bytes length");
    refused(b -> b.put(120, (byte) 0), "variant field has bytes after");
    refused(b -> b.put(121, (byte) 0xff), "variant");
    refused(b -> b.put(152, (byte) 0xff), "export name is not UTF-8");
    refused(b -> b.put(230, (byte) 1), "reserved header byte 230");
  }

  @Test
  void crcsTruncationAndForeignFilesAreNamed() throws IOException {
    Path good = good();
    byte[] bytes = Files.readAllBytes(good);
    Path flipped = folder.resolve("flipped");
    byte[] body = bytes.clone();
    body[260] ^= 1;
    Files.write(flipped, body);
    assertMessage(flipped, "CRC mismatch in the sections");
    byte[] head = bytes.clone();
    head[100] ^= 1; // inside the fingerprint
    Files.write(flipped, head);
    assertMessage(flipped, "header CRC mismatch");
    for (int length : new int[] {bytes.length - 1, 300, 256, 100, 8}) {
      Path truncated = folder.resolve("truncated" + length);
      Files.write(truncated, Arrays.copyOf(bytes, length));
      assertMessage(truncated, "truncated");
    }
    Path longer = folder.resolve("longer");
    Files.write(longer, Arrays.copyOf(bytes, bytes.length + 3));
    assertMessage(longer, "3 bytes after the end");
    Path foreign = folder.resolve("photo.jpg");
    Files.write(foreign, new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff, 0, 1, 2, 3, 4, 5});
    assertMessage(foreign, "is not a device index");
    Files.write(foreign, new byte[0]);
    assertMessage(foreign, "is not a device index");
    assertMessage(folder.resolve("missing"), "no such index file");
  }

  @Test
  void idOffsetsIdsAndValuesAreChecked() throws IOException {
    // Three ids of 15 bytes: offsets 0, 15, 30, 45.
    Path good = good();
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(good)).order(ByteOrder.LITTLE_ENDIAN);
    int offsets = (int) b.getLong(64);
    int ids = (int) b.getLong(72);
    int scales = (int) b.getLong(48);
    refused(x -> x.putLong(offsets, 1), "id offset 0 is 1");
    refused(x -> x.putLong(offsets + 8, 15 + 30), "id offset 2");
    refused(x -> x.putLong(offsets + 8, 0), "id offset 1 is 0");
    refused(x -> x.put(ids + 15 + 10, (byte) '0'), "ids 0 and 1 are not in ascending order"); // photo/00000 twice
    refused(x -> x.put(ids + 4, (byte) 'z'), "ids 0 and 1 are not in ascending order");
    refused(x -> x.put(ids + 3, (byte) 0), "id 0 has a zero byte");
    refused(x -> x.put(ids + 3, (byte) 0xc3), "id 0 is not UTF-8");
    refused(x -> x.putFloat(scales + 4, Float.NaN), "row 1's scale NaN");
    refused(x -> x.putFloat(scales, -1f), "row 0's scale -1.0");
    int mean = (int) b.getLong(216);
    refused(x -> x.putFloat(mean + 4, Float.NaN), "mean element 1 is NaN");
    refused(x -> x.putFloat(mean + 12, Float.NEGATIVE_INFINITY), "mean element 3 is -Infinity");
    Path half = TestIndexes.write(folder.resolve("half"), ElementType.FLOAT16, 4,
        TestIndexes.rows(2, 4, ElementType.FLOAT16, 3));
    Path infinite = TestIndexes.edited(half, folder.resolve("inf"), x -> x.putShort(256 + 8 + 2, (short) 0x7c00));
    assertMessage(infinite, "row 1 has an infinite or NaN element");
  }

  @Test
  void writerRefusesRowsOutOfOrderAndLeavesNothing() throws IOException {
    TestIndexes.Rows sorted = TestIndexes.rows(3, 4, ElementType.INT8, 4);
    List<IndexRow> rows = new java.util.ArrayList<>(sorted.list());
    java.util.Collections.swap(rows, 0, 2);
    Path file = folder.resolve("w.clipidx");
    IndexException e = assertThrows(IndexException.class,
        () -> IndexWriter.write(file, TestIndexes.MODEL, ElementType.INT8, 4, sorted.mean(), rows));
    assertTrue(e.getMessage().contains("sorted by id and unique"), e.getMessage());
    IndexException noMean = assertThrows(IndexException.class,
        () -> IndexWriter.write(file, TestIndexes.MODEL, ElementType.INT8, 4, null, sorted.list()));
    assertTrue(noMean.getMessage().contains("int8 rows take a mean of 4 elements"), noMean.getMessage());
    IndexException infinite = assertThrows(IndexException.class, () -> IndexWriter.write(file, TestIndexes.MODEL,
        ElementType.INT8, 4, new float[] {0, Float.NaN, 0, 0}, sorted.list()));
    assertTrue(infinite.getMessage().contains("mean element 1 is NaN"), infinite.getMessage());
    try (var listing = Files.list(folder)) {
      assertEquals(0, listing.count());
    }
  }

  @Test
  void longExportNamesAreCutAtACharacterBoundary() {
    String name = "é".repeat(40); // 80 bytes: 32 characters fit in 64 bytes
    assertEquals("é".repeat(32), new String(IndexWriter.truncatedName(name), StandardCharsets.UTF_8));
    assertEquals(63, IndexWriter.truncatedName("a" + name).length);
  }

  private static void assertMessage(Path file, String expected) {
    IndexException e = assertThrows(IndexException.class, () -> IndexFile.load(file));
    assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    assertTrue(e.getMessage().contains(expected), e.getMessage());
  }
}
