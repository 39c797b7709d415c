package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.index.ElementType;
import dev.clipedge.clip.index.Fingerprint;
import dev.clipedge.clip.index.IndexException;
import dev.clipedge.clip.index.IndexFile;
import dev.clipedge.clip.index.IndexRow;
import dev.clipedge.clip.index.IndexWriter;
import dev.clipedge.clip.index.PhotoSearch;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The fingerprint rule, checked before any model is opened (the loader here must never be called). */
class PhotoSearchFingerprintTest {
  @TempDir Path folder;

  private IndexFile index(Fingerprint fingerprint) throws IOException {
    Path file = folder.resolve("i.clipidx");
    float[] mean = {0.6f, 0.8f}; // the mean of the one row
    IndexWriter.write(file, fingerprint, ElementType.INT8, 2, mean,
        List.of(IndexRow.encode("a.jpg", new byte[16], new float[] {0.6f, 0.8f}, ElementType.INT8, mean)));
    return IndexFile.load(file);
  }

  @Test
  void anotherModelIsRefusedNamingBoth() throws IOException {
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("e")));
    byte[] abc = HexFormat.of().parseHex(ExportFixture.ABC_SHA256);
    // Same variant, another file (sha256): refused, naming both.
    IndexFile other = index(new Fingerprint(new byte[32], "float32", "fixture"));
    IndexException e = assertThrows(IndexException.class,
        () -> PhotoSearch.open(manifest, null, file -> { throw new AssertionError("opened " + file); }, other));
    assertTrue(e.getMessage().contains("sha256 " + "00".repeat(32))
        && e.getMessage().contains(ExportFixture.ABC_SHA256), e.getMessage());
    // The right file, but the query asks for another variant: refused, naming both.
    IndexFile float32 = index(new Fingerprint(abc, "float32", "fixture"));
    IndexException variant = assertThrows(IndexException.class,
        () -> PhotoSearch.open(manifest, "int8", file -> { throw new AssertionError("opened " + file); }, float32));
    assertTrue(variant.getMessage().contains("image_encoder_float32.tflite")
        && variant.getMessage().contains("image_encoder_int8.tflite"), variant.getMessage());
    // A variant the export does not have.
    IndexFile missing = index(new Fingerprint(abc, "float16", "fixture"));
    IndexException absent = assertThrows(IndexException.class,
        () -> PhotoSearch.open(manifest, null, file -> { throw new AssertionError("opened " + file); }, missing));
    assertTrue(absent.getMessage().contains("no image encoder of variant 'float16'"), absent.getMessage());
    PhotoSearch.checkFingerprint(manifest, "float32", float32); // the matching model passes
  }
}
