package dev.clipedge.clip.index;

import static dev.clipedge.clip.index.IndexFormat.HASH_BYTES;
import static dev.clipedge.clip.index.IndexFormat.HEADER_SIZE;

import dev.clipedge.clip.index.IndexFormat.Layout;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32;

/**
 * Writes an index file (docs/device_index.md): FILE.tmp-PID in the same folder, written, forced to disk, then
 * renamed over FILE, so that a process killed at any point leaves the previous FILE whole.
 */
public final class IndexWriter {
  /** Test seam: runs after the temporary file is complete and synced, before the rename (a kill lands here). */
  static Runnable beforeRename = () -> {};

  private static final int BLOCK = 1 << 20;

  private IndexWriter() {}

  /** The temporary file a write into {@code file} goes through: FILE.tmp-PID. */
  static Path temporaryFile(Path file) {
    return file.resolveSibling(file.getFileName() + ".tmp-" + processId());
  }

  /** This process's id; Android has no ProcessHandle, and there a random number serves as well. */
  private static long processId() {
    try {
      return ProcessHandle.current().pid();
    } catch (LinkageError | UnsupportedOperationException e) {
      return new SecureRandom().nextLong() & Long.MAX_VALUE;
    }
  }

  /**
   * Writes {@code rows}, which must be sorted by id (unsigned bytes) with unique ids, as {@code file}; int8 rows
   * with the {@code mean} they were encoded against ({@link IndexRow#encode}), null for float16. Every row is
   * checked before the temporary file is created.
   */
  public static void write(Path file, Fingerprint fingerprint, ElementType type, int dimension, float[] mean,
      List<IndexRow> rows) throws IOException {
    Layout layout = check(file, type, dimension, mean, rows);
    Path temporary = temporaryFile(file);
    try {
      try (FileChannel channel = FileChannel.open(temporary, StandardOpenOption.CREATE,
          StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
        Body body = new Body(channel);
        body.zerosTo(layout.embeddings());
        for (IndexRow row : rows) {
          body.put(row.elements());
        }
        if (type == ElementType.INT8) {
          body.zerosTo(layout.scales());
          for (IndexRow row : rows) {
            body.putFloat(row.scale());
          }
          body.zerosTo(layout.mean());
          for (float value : mean) {
            body.putFloat(value);
          }
        }
        body.zerosTo(layout.hashes());
        for (IndexRow row : rows) {
          body.put(row.contentHash());
        }
        body.zerosTo(layout.idOffsets());
        long offset = 0;
        body.putLong(offset);
        for (IndexRow row : rows) {
          offset += row.id().length;
          body.putLong(offset);
        }
        body.zerosTo(layout.idBytes());
        for (IndexRow row : rows) {
          body.put(row.id());
        }
        body.flush();
        ByteBuffer header = header(layout, fingerprint, type, dimension, rows.size(), body.crc());
        while (header.hasRemaining()) {
          channel.write(header, header.position());
        }
        channel.force(true);
      }
      beforeRename.run();
      Files.move(temporary, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(temporary);
      throw e;
    }
  }

  private static Layout check(Path file, ElementType type, int dimension, float[] mean, List<IndexRow> rows) {
    if (dimension < 1 || dimension > IndexFormat.MAX_DIMENSION) {
      throw new IndexException(file + ": dimension " + dimension + " is outside 1 to " + IndexFormat.MAX_DIMENSION);
    }
    if (type == ElementType.FLOAT16 ? mean != null : mean == null || mean.length != dimension) {
      throw new IndexException(file + ": " + type.label() + " rows take " + (type == ElementType.FLOAT16 ? "no mean"
          : "a mean of " + dimension + " elements"));
    }
    for (int j = 0; mean != null && j < dimension; j++) {
      if (!Float.isFinite(mean[j])) {
        throw new IndexException(file + ": mean element " + j + " is " + mean[j] + ", not a finite number");
      }
    }
    if ((long) rows.size() * Math.max(dimension * type.bytes, HASH_BYTES) > IndexFormat.MAX_SECTION_BYTES) {
      throw new IndexException(file + ": " + rows.size() + " rows of " + dimension + " " + type.label()
          + " elements exceed the format's 2^31 - 1 bytes per section");
    }
    long idLength = 0;
    for (int i = 0; i < rows.size(); i++) {
      IndexRow row = rows.get(i);
      String what = file + ": row " + i + " (" + row.idString() + ")";
      if (row.id().length < 1 || row.id().length > IndexFormat.MAX_ID_BYTES) {
        throw new IndexException(what + ": an id has 1 to " + IndexFormat.MAX_ID_BYTES + " bytes, not "
            + row.id().length);
      }
      for (byte b : row.id()) {
        if (b == 0) {
          throw new IndexException(what + ": an id has no zero bytes");
        }
      }
      if (i > 0 && Arrays.compareUnsigned(rows.get(i - 1).id(), row.id()) >= 0) {
        throw new IndexException(what + ": rows must be sorted by id and unique");
      }
      if (row.contentHash().length != HASH_BYTES) {
        throw new IndexException(what + ": a content hash has " + HASH_BYTES + " bytes");
      }
      if (row.elements().length != dimension * type.bytes) {
        throw new IndexException(what + ": " + row.elements().length + " bytes of elements, expected "
            + dimension * type.bytes);
      }
      if (type == ElementType.INT8 && !(row.scale() > 0 && Float.isFinite(row.scale()))) {
        throw new IndexException(what + ": scale " + row.scale() + " is not a positive number");
      }
      idLength += row.id().length;
    }
    if (idLength > IndexFormat.MAX_SECTION_BYTES) {
      throw new IndexException(file + ": " + idLength + " bytes of ids exceed the format's 2^31 - 1");
    }
    return Layout.of(type, dimension, rows.size(), idLength);
  }

  private static ByteBuffer header(Layout layout, Fingerprint fingerprint, ElementType type, int dimension,
      int count, long bodyCrc) {
    ByteBuffer header = ByteBuffer.allocate(HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
    header.put(IndexFormat.MAGIC);
    header.putInt(IndexFormat.VERSION_AT, IndexFormat.VERSION);
    header.putInt(IndexFormat.HEADER_SIZE_AT, HEADER_SIZE);
    header.putInt(IndexFormat.DIMENSION_AT, dimension);
    header.putInt(IndexFormat.TYPE_AT, type.code);
    header.putLong(IndexFormat.COUNT_AT, count);
    header.putLong(IndexFormat.FILE_SIZE_AT, layout.fileSize());
    header.putLong(IndexFormat.EMBEDDINGS_AT, layout.embeddings());
    header.putLong(IndexFormat.SCALES_AT, layout.scales());
    header.putLong(IndexFormat.MEAN_AT, layout.mean());
    header.putLong(IndexFormat.HASHES_AT, layout.hashes());
    header.putLong(IndexFormat.ID_OFFSETS_AT, layout.idOffsets());
    header.putLong(IndexFormat.ID_BYTES_AT, layout.idBytes());
    header.putLong(IndexFormat.ID_LENGTH_AT, layout.idLength());
    header.put(IndexFormat.SHA256_AT, fingerprint.imageEncoderSha256());
    header.put(IndexFormat.VARIANT_AT, fingerprint.variant().getBytes(StandardCharsets.US_ASCII));
    header.put(IndexFormat.NAME_AT, truncatedName(fingerprint.exportName()));
    header.putInt(IndexFormat.BODY_CRC_AT, (int) bodyCrc);
    CRC32 crc = new CRC32();
    crc.update(header.array(), 0, IndexFormat.HEADER_CRC_AT);
    header.putInt(IndexFormat.HEADER_CRC_AT, (int) crc.getValue());
    return header.clear();
  }

  /** The export's name as UTF-8, cut at a character boundary to at most 64 bytes (it is informational). */
  static byte[] truncatedName(String name) {
    byte[] bytes = name.replace("\0", "").getBytes(StandardCharsets.UTF_8);
    int length = Math.min(bytes.length, IndexFormat.NAME_BYTES);
    while (length < bytes.length && (bytes[length] & 0xc0) == 0x80) {
      length--; // bytes[length] continues a character: cut before that character starts
    }
    return Arrays.copyOf(bytes, length);
  }

  /** The sections after the header, written in blocks through one buffer, with their CRC-32. */
  private static final class Body {
    private final FileChannel channel;
    private final ByteBuffer buffer = ByteBuffer.allocate(BLOCK).order(ByteOrder.LITTLE_ENDIAN);
    private final CRC32 crc = new CRC32();
    private long position = HEADER_SIZE;

    Body(FileChannel channel) {
      this.channel = channel;
    }

    void zerosTo(long offset) throws IOException {
      while (position < offset) {
        room(1);
        buffer.put((byte) 0);
        position++;
      }
    }

    void put(byte[] bytes) throws IOException {
      for (int start = 0; start < bytes.length; ) {
        room(1);
        int n = Math.min(buffer.remaining(), bytes.length - start);
        buffer.put(bytes, start, n);
        start += n;
        position += n;
      }
    }

    void putFloat(float value) throws IOException {
      room(4);
      buffer.putFloat(value);
      position += 4;
    }

    void putLong(long value) throws IOException {
      room(8);
      buffer.putLong(value);
      position += 8;
    }

    private void room(int bytes) throws IOException {
      if (buffer.remaining() < bytes) {
        flush();
      }
    }

    void flush() throws IOException {
      buffer.flip();
      crc.update(buffer.array(), 0, buffer.limit());
      long at = position - buffer.limit();
      while (buffer.hasRemaining()) {
        at += channel.write(buffer, at);
      }
      buffer.clear();
    }

    long crc() {
      return crc.getValue();
    }
  }
}
