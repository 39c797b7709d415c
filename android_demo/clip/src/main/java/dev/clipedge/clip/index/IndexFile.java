package dev.clipedge.clip.index;

import static dev.clipedge.clip.index.IndexFormat.HASH_BYTES;
import static dev.clipedge.clip.index.IndexFormat.HEADER_SIZE;
import static dev.clipedge.clip.index.IndexFormat.MAX_SECTION_BYTES;

import dev.clipedge.clip.index.IndexFormat.Layout;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.zip.CRC32;

/**
 * An index file (docs/device_index.md) read whole into memory, after checking every header field, both CRCs, the
 * id offsets, the ids (1 to 4096 bytes, no zero byte, UTF-8, strictly ascending as unsigned bytes), and that the
 * scales, the mean and float16 elements are finite: anything else is an {@link IndexException} naming the file, and no
 * IndexFile. Sizes are checked against the file before anything is allocated, so memory is bounded by the file.
 *
 * <p>int8 rows are kept packed four elements to an int, in file order (element 4k of a row in the low byte of
 * its word k), each row padded with zeros to whole words: the layout {@link IndexSearcher}'s vectorised integer
 * pass reads. Immutable; safe to share between threads.
 */
public final class IndexFile {
  /** Bytes mapped at a time when computing the body's CRC. */
  private static final int CRC_CHUNK = 1 << 30;

  private final Path file;
  private final Fingerprint fingerprint;
  private final ElementType type;
  private final int dimension;
  private final int count;
  /** int8: row r's elements in words [r * words, (r + 1) * words); null for float16. */
  private final int[] packed;
  private final int words;
  /** int8: one scale per row; null for float16. */
  private final float[] scales;
  /** int8: the mean the rows' codes are differences from; null for float16. */
  private final float[] mean;
  /** float16: row r's elements at [r * dimension, (r + 1) * dimension); null for int8. */
  private final short[] halves;
  private final byte[] hashes;
  private final int[] idOffsets;
  private final byte[] idBytes;

  private IndexFile(Path file, Fingerprint fingerprint, ElementType type, int dimension, int count, int[] packed,
      float[] scales, float[] mean, short[] halves, byte[] hashes, int[] idOffsets, byte[] idBytes) {
    this.file = file;
    this.fingerprint = fingerprint;
    this.type = type;
    this.dimension = dimension;
    this.count = count;
    this.packed = packed;
    this.words = (dimension + 3) / 4;
    this.scales = scales;
    this.mean = mean;
    this.halves = halves;
    this.hashes = hashes;
    this.idOffsets = idOffsets;
    this.idBytes = idBytes;
  }

  public static IndexFile load(Path file) {
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
      return new Loader(file, channel).load();
    } catch (NoSuchFileException e) {
      throw new IndexException(file + ": no such index file");
    } catch (IOException e) {
      throw new IndexException(file + ": cannot read: " + e.getMessage());
    }
  }

  public Path file() {
    return file;
  }

  /** The model that made the rows. */
  public Fingerprint fingerprint() {
    return fingerprint;
  }

  public ElementType elementType() {
    return type;
  }

  public int dimension() {
    return dimension;
  }

  public int count() {
    return count;
  }

  /** Row {@code row}'s id (checked to be UTF-8 when loading). */
  public String id(int row) {
    return new String(idBytes, idOffsets[row], idOffsets[row + 1] - idOffsets[row], StandardCharsets.UTF_8);
  }

  public byte[] contentHash(int row) {
    return Arrays.copyOfRange(hashes, HASH_BYTES * row, HASH_BYTES * (row + 1));
  }

  /** The row whose id is {@code id} (UTF-8 bytes), or -1: a binary search, rows being sorted by id. */
  public int rowOf(byte[] id) {
    int low = 0;
    int high = count - 1;
    while (low <= high) {
      int middle = (low + high) >>> 1;
      int order = Arrays.compareUnsigned(idBytes, idOffsets[middle], idOffsets[middle + 1], id, 0, id.length);
      if (order < 0) {
        low = middle + 1;
      } else if (order > 0) {
        high = middle - 1;
      } else {
        return middle;
      }
    }
    return -1;
  }

  /** Row {@code row} as stored, for carrying it into a new version of the index unchanged. */
  public IndexRow row(int row) {
    byte[] id = Arrays.copyOfRange(idBytes, idOffsets[row], idOffsets[row + 1]);
    ByteBuffer elements = ByteBuffer.allocate(dimension * type.bytes).order(ByteOrder.LITTLE_ENDIAN);
    if (type == ElementType.INT8) {
      ByteBuffer words = ByteBuffer.allocate(4 * this.words).order(ByteOrder.LITTLE_ENDIAN);
      words.asIntBuffer().put(packed, row * this.words, this.words);
      elements.put(words.array(), 0, dimension);
      return new IndexRow(id, contentHash(row), elements.array(), scales[row]);
    }
    elements.asShortBuffer().put(halves, row * dimension, dimension);
    return new IndexRow(id, contentHash(row), elements.array(), 1f);
  }

  /** int8: a copy of the mean the rows were quantised against (an update quantises new rows against it). */
  public float[] mean() {
    return mean == null ? null : mean.clone();
  }

  int words() {
    return words;
  }

  int[] packed() {
    return packed;
  }

  float[] scales() {
    return scales;
  }

  short[] halves() {
    return halves;
  }

  /** Reads and checks one file; each check's message names the file and the field. */
  private static final class Loader {
    private final Path file;
    private final FileChannel channel;

    Loader(Path file, FileChannel channel) {
      this.file = file;
      this.channel = channel;
    }

    private IndexException corrupt(String what) {
      return new IndexException(file + ": " + what);
    }

    IndexFile load() throws IOException {
      long size = channel.size();
      ByteBuffer header = ByteBuffer.allocate((int) Math.min(size, HEADER_SIZE)).order(ByteOrder.LITTLE_ENDIAN);
      while (header.hasRemaining() && channel.read(header, header.position()) > 0) {
        // reads the header, or the whole of a shorter file
      }
      byte[] head = header.array();
      if (head.length < IndexFormat.MAGIC.length
          || !Arrays.equals(head, 0, IndexFormat.MAGIC.length, IndexFormat.MAGIC, 0, IndexFormat.MAGIC.length)) {
        throw new IndexException(file + " is not a device index (it does not start with CLIPIDX)");
      }
      if (size < HEADER_SIZE) {
        throw corrupt("truncated: " + size + " bytes, less than the " + HEADER_SIZE + "-byte header");
      }
      long version = u32(header, IndexFormat.VERSION_AT);
      if (version != IndexFormat.VERSION) {
        throw corrupt("format version " + version + "; this reader reads version " + IndexFormat.VERSION);
      }
      CRC32 headerCrc = new CRC32();
      headerCrc.update(head, 0, IndexFormat.HEADER_CRC_AT);
      if (headerCrc.getValue() != u32(header, IndexFormat.HEADER_CRC_AT)) {
        throw corrupt("header CRC mismatch (corrupt header)");
      }
      long headerSize = u32(header, IndexFormat.HEADER_SIZE_AT);
      if (headerSize != HEADER_SIZE) {
        throw corrupt("header size " + headerSize + ", expected " + HEADER_SIZE);
      }
      long dimension = u32(header, IndexFormat.DIMENSION_AT);
      if (dimension < 1 || dimension > IndexFormat.MAX_DIMENSION) {
        throw corrupt("dimension " + dimension + " is outside 1 to " + IndexFormat.MAX_DIMENSION);
      }
      long typeCode = u32(header, IndexFormat.TYPE_AT);
      ElementType type = ElementType.fromCode(typeCode);
      if (type == null) {
        throw corrupt("element type " + typeCode + " is neither 1 (float16) nor 2 (int8)");
      }
      long count = header.getLong(IndexFormat.COUNT_AT);
      // Every section (embeddings, scales, hashes, id offsets) must fit one Java array.
      if (count < 0 || count > IndexFormat.MAX_ROWS
          || count * Math.max(dimension * type.bytes, HASH_BYTES) > MAX_SECTION_BYTES) {
        throw corrupt("row count " + Long.toUnsignedString(count) + " is beyond the format's limits for "
            + dimension + " " + type.label() + " elements");
      }
      long idLength = header.getLong(IndexFormat.ID_LENGTH_AT);
      if (idLength < 0 || idLength > MAX_SECTION_BYTES) {
        throw corrupt("id-bytes length " + Long.toUnsignedString(idLength) + " is beyond 2^31 - 1");
      }
      Layout layout = Layout.of(type, (int) dimension, count, idLength);
      long declared = header.getLong(IndexFormat.FILE_SIZE_AT);
      if (declared != layout.fileSize()) {
        throw corrupt("header's file size " + Long.toUnsignedString(declared) + " does not match its sections, "
            + "which end at " + layout.fileSize());
      }
      if (size < declared) {
        throw corrupt("truncated: " + size + " bytes of the " + declared + " its header declares");
      }
      if (size > declared) {
        throw corrupt(size - declared + " bytes after the end its header declares (" + declared + ")");
      }
      offset(header, IndexFormat.EMBEDDINGS_AT, "embeddings", layout.embeddings());
      offset(header, IndexFormat.SCALES_AT, "scales", layout.scales());
      offset(header, IndexFormat.MEAN_AT, "mean", layout.mean());
      offset(header, IndexFormat.HASHES_AT, "content-hash", layout.hashes());
      offset(header, IndexFormat.ID_OFFSETS_AT, "id-offsets", layout.idOffsets());
      offset(header, IndexFormat.ID_BYTES_AT, "id-bytes", layout.idBytes());
      Fingerprint fingerprint = fingerprint(head);
      for (int i = 0; i < IndexFormat.RESERVED_BYTES; i++) {
        if (head[IndexFormat.RESERVED_AT + i] != 0) {
          throw corrupt("reserved header byte " + (IndexFormat.RESERVED_AT + i) + " is not zero");
        }
      }
      checkBodyCrc(size, u32(header, IndexFormat.BODY_CRC_AT));

      int rows = (int) count;
      int[] idOffsets = idOffsets(map(layout.idOffsets(), 8L * (rows + 1)), rows, idLength);
      byte[] idBytes = new byte[(int) idLength];
      map(layout.idBytes(), idLength).get(idBytes);
      checkIds(idBytes, idOffsets, rows);
      byte[] hashes = new byte[HASH_BYTES * rows];
      map(layout.hashes(), hashes.length).get(hashes);
      ByteBuffer embeddings = map(layout.embeddings(), (long) rows * dimension * type.bytes);
      if (type == ElementType.INT8) {
        float[] scales = new float[rows];
        map(layout.scales(), 4L * rows).asFloatBuffer().get(scales);
        for (int i = 0; i < rows; i++) {
          if (!(scales[i] > 0 && Float.isFinite(scales[i]))) {
            throw corrupt("row " + i + "'s scale " + scales[i] + " is not a positive number");
          }
        }
        float[] mean = new float[(int) dimension];
        map(layout.mean(), 4L * dimension).asFloatBuffer().get(mean);
        for (int j = 0; j < dimension; j++) {
          if (!Float.isFinite(mean[j])) {
            throw corrupt("mean element " + j + " is " + mean[j] + ", not a finite number");
          }
        }
        return new IndexFile(file, fingerprint, type, (int) dimension, rows, pack(embeddings, rows,
            (int) dimension), scales, mean, null, hashes, idOffsets, idBytes);
      }
      short[] halves = new short[rows * (int) dimension];
      embeddings.asShortBuffer().get(halves);
      for (int i = 0; i < halves.length; i++) {
        if ((halves[i] & 0x7c00) == 0x7c00) {
          throw corrupt("row " + i / dimension + " has an infinite or NaN element");
        }
      }
      return new IndexFile(file, fingerprint, type, (int) dimension, rows, null, null, null, halves, hashes,
          idOffsets, idBytes);
    }

    private static long u32(ByteBuffer buffer, int at) {
      return buffer.getInt(at) & 0xffffffffL;
    }

    private void offset(ByteBuffer header, int at, String section, long expected) {
      long actual = header.getLong(at);
      if (actual != expected) {
        throw corrupt("header's " + section + " offset " + Long.toUnsignedString(actual) + ", expected " + expected);
      }
    }

    private Fingerprint fingerprint(byte[] head) {
      byte[] sha256 = Arrays.copyOfRange(head, IndexFormat.SHA256_AT, IndexFormat.SHA256_AT + IndexFormat.SHA256_BYTES);
      int variantLength = padded(head, IndexFormat.VARIANT_AT, IndexFormat.VARIANT_BYTES, "variant");
      String variant = new String(head, IndexFormat.VARIANT_AT, variantLength, StandardCharsets.US_ASCII);
      if (!variant.matches("[\\x21-\\x7e]+")) {
        throw corrupt("the fingerprint's variant is not printable ASCII");
      }
      int nameLength = padded(head, IndexFormat.NAME_AT, IndexFormat.NAME_BYTES, "export name");
      String name;
      try {
        name = utf8().decode(ByteBuffer.wrap(head, IndexFormat.NAME_AT, nameLength)).toString();
      } catch (CharacterCodingException e) {
        throw corrupt("the export name is not UTF-8");
      }
      return new Fingerprint(sha256, variant, name);
    }

    /** The length of a zero-padded field's text; zero bytes must run to the field's end. */
    private int padded(byte[] head, int at, int width, String field) {
      int length = 0;
      while (length < width && head[at + length] != 0) {
        length++;
      }
      for (int i = length; i < width; i++) {
        if (head[at + i] != 0) {
          throw corrupt("the " + field + " field has bytes after its zero padding starts");
        }
      }
      return length;
    }

    private void checkBodyCrc(long size, long expected) throws IOException {
      CRC32 crc = new CRC32();
      for (long at = HEADER_SIZE; at < size; at += CRC_CHUNK) {
        crc.update(map(at, Math.min(CRC_CHUNK, size - at)));
      }
      if (crc.getValue() != expected) {
        throw corrupt("CRC mismatch in the sections after the header (corrupt data)");
      }
    }

    private int[] idOffsets(ByteBuffer section, int rows, long idLength) {
      int[] offsets = new int[rows + 1];
      long previous = 0;
      for (int i = 0; i <= rows; i++) {
        long offset = section.getLong(8 * i);
        long length = offset - previous;
        if (i == 0 ? offset != 0 : (offset < previous || length < 1 || length > IndexFormat.MAX_ID_BYTES)) {
          throw corrupt("id offset " + i + " is " + Long.toUnsignedString(offset) + " after " + previous
              + "; each id has 1 to " + IndexFormat.MAX_ID_BYTES + " bytes and the first offset is 0");
        }
        offsets[i] = (int) Math.min(offset, Integer.MAX_VALUE);
        previous = offset;
      }
      if (previous != idLength) {
        throw corrupt("the last id offset is " + previous + ", not the id-bytes length " + idLength);
      }
      return offsets;
    }

    private void checkIds(byte[] ids, int[] offsets, int rows) {
      CharsetDecoder decoder = utf8();
      for (int i = 0; i < rows; i++) {
        for (int at = offsets[i]; at < offsets[i + 1]; at++) {
          if (ids[at] == 0) {
            throw corrupt("id " + i + " has a zero byte");
          }
        }
        try {
          decoder.decode(ByteBuffer.wrap(ids, offsets[i], offsets[i + 1] - offsets[i]));
        } catch (CharacterCodingException e) {
          throw corrupt("id " + i + " is not UTF-8");
        }
        if (i > 0 && Arrays.compareUnsigned(ids, offsets[i - 1], offsets[i], ids, offsets[i], offsets[i + 1]) >= 0) {
          throw corrupt("ids " + (i - 1) + " and " + i + " are not in ascending order (or repeat an id)");
        }
      }
    }

    private static CharsetDecoder utf8() {
      return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT);
    }

    /** int8 rows packed four elements to an int, each row padded to whole words (see the class comment). */
    private static int[] pack(ByteBuffer embeddings, int rows, int dimension) {
      int words = (dimension + 3) / 4;
      int[] packed = new int[rows * words];
      if (dimension % 4 == 0) {
        embeddings.asIntBuffer().get(packed); // rows are already whole words: one bulk copy
        return packed;
      }
      byte[] row = new byte[4 * words];
      ByteBuffer rowWords = ByteBuffer.wrap(row).order(ByteOrder.LITTLE_ENDIAN);
      for (int r = 0; r < rows; r++) {
        embeddings.get(row, 0, dimension);
        rowWords.asIntBuffer().get(packed, r * words, words);
      }
      return packed;
    }

    private ByteBuffer map(long offset, long length) throws IOException {
      return channel.map(FileChannel.MapMode.READ_ONLY, offset, length).order(ByteOrder.LITTLE_ENDIAN);
    }
  }
}
