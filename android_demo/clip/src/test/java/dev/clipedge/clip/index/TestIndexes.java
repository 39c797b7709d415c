package dev.clipedge.clip.index;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.CRC32;

/** Rows and files for the index tests; offsets and CRCs are computed here from docs/device_index.md. */
final class TestIndexes {
  static final Fingerprint MODEL = new Fingerprint(filled(32, 7), "dynamic_int8", "small");

  private TestIndexes() {}

  static byte[] filled(int length, int value) {
    byte[] bytes = new byte[length];
    java.util.Arrays.fill(bytes, (byte) value);
    return bytes;
  }

  /** A unit vector near one of {@code clusters} random centres (deterministic in the seed). */
  static float[] vector(SplittableRandom random, int dimension, float[][] centres) {
    double[] v = new double[dimension];
    double squares = 0;
    float[] centre = centres[random.nextInt(centres.length)];
    for (int j = 0; j < dimension; j++) {
      v[j] = centre[j] + 0.5 * (random.nextDouble() - 0.5);
      squares += v[j] * v[j];
    }
    float[] unit = new float[dimension];
    for (int j = 0; j < dimension; j++) {
      unit[j] = (float) (v[j] / Math.sqrt(squares));
    }
    return unit;
  }

  static float[][] centres(SplittableRandom random, int count, int dimension) {
    float[][] centres = new float[count][dimension];
    for (float[] centre : centres) {
      for (int j = 0; j < dimension; j++) {
        centre[j] = (float) (random.nextDouble() - 0.5);
      }
    }
    return centres;
  }

  /** Rows to write, sorted by id, and the mean their int8 codes were made against (null for float16). */
  record Rows(float[] mean, List<IndexRow> list) {
    IndexRow get(int row) {
      return list.get(row);
    }
  }

  /** {@code count} rows "photo/NNNNN.jpg" of clustered unit vectors, sorted by id; int8 against their mean. */
  static Rows rows(int count, int dimension, ElementType type, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    float[][] centres = centres(random, 5, dimension);
    List<float[]> vectors = new ArrayList<>();
    List<byte[]> hashes = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      byte[] hash = new byte[16];
      random.nextBytes(hash);
      hashes.add(hash);
      vectors.add(vector(random, dimension, centres));
    }
    return encode(vectors, hashes, type, dimension);
  }

  /** Rows "photo/NNNNN.jpg" of these embeddings and hashes, int8 against their mean. */
  static Rows encode(List<float[]> vectors, List<byte[]> hashes, ElementType type, int dimension) {
    float[] mean = type == ElementType.INT8 ? IndexRow.mean(vectors, dimension) : null;
    List<IndexRow> rows = new ArrayList<>();
    for (int i = 0; i < vectors.size(); i++) {
      rows.add(IndexRow.encode(String.format("photo/%05d.jpg", i), hashes.get(i), vectors.get(i), type, mean));
    }
    return new Rows(mean, rows);
  }

  static Path write(Path file, ElementType type, int dimension, Rows rows) throws IOException {
    IndexWriter.write(file, MODEL, type, dimension, rows.mean(), rows.list());
    return file;
  }

  /** The file with {@code edit} applied to its bytes, both CRCs recomputed so that only the edit is wrong. */
  static Path edited(Path file, Path out, java.util.function.Consumer<ByteBuffer> edit) throws IOException {
    ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    edit.accept(bytes);
    Files.write(out, fixCrcs(bytes.array()));
    return out;
  }

  static byte[] fixCrcs(byte[] bytes) {
    ByteBuffer buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    CRC32 body = new CRC32();
    body.update(bytes, 256, bytes.length - 256);
    buffer.putInt(248, (int) body.getValue());
    CRC32 header = new CRC32();
    header.update(bytes, 0, 252);
    buffer.putInt(252, (int) header.getValue());
    return bytes;
  }
}
