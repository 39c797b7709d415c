package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.Manifest.Artifact;
import dev.clipedge.clip.Manifest.ExportException;
import dev.clipedge.clip.runtime.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ManifestTest {
  @TempDir Path folder;

  private static ExportException fails(Path export, String... expectedInMessage) {
    ExportException error = assertThrows(ExportException.class,
        () -> Manifest.load(export).artifact("image", "float32").verified());
    for (String expected : expectedInMessage) {
      assertTrue(error.getMessage().contains(expected), error.getMessage());
    }
    assertFalse(error.getMessage().contains("\n"), "one line: " + error.getMessage());
    return error;
  }

  @Test
  void readsArtifactsTensorsAndQuantisation() throws IOException {
    Path export = ExportFixture.writeDefault(folder.resolve("fixture"));
    Manifest manifest = Manifest.load(export);
    assertEquals("fixture", manifest.name());
    assertEquals(22.5, manifest.logitMultiplier());
    assertEquals(4L, manifest.config().get("image_resolution"));
    assertEquals(List.of("float32", "int8"), manifest.variants("image"));
    assertEquals(List.of("float32", "dynamic_int8"), manifest.variants("text"));
    assertEquals(List.of(), manifest.artifact("text", "float32").signatures());
    List<Manifest.Signature> signatures = manifest.artifact("text", "dynamic_int8").signatures();
    assertEquals(List.of("serving_default", "tokens_3"),
        signatures.stream().map(Manifest.Signature::key).toList());
    assertEquals(List.of(5, 3), signatures.stream().map(Manifest.Signature::length).toList());
    assertArrayEquals(new int[] {1, 3}, signatures.get(1).inputs().get(0).shape());

    Artifact image = manifest.artifact("image", "float32");
    assertEquals(export.resolve("tflite/image_encoder_float32.tflite"), image.verified());
    assertEquals(DType.UINT8, image.inputs().get(0).dtype());
    assertArrayEquals(new int[] {1, 4, 4, 3}, image.inputs().get(0).shape());
    assertNull(image.inputs().get(0).quantization());

    Artifact int8 = manifest.artifact("image", "int8");
    assertEquals(0.5, int8.outputs().get(0).quantization().scale());
    assertEquals(-1, int8.outputs().get(0).quantization().zeroPoint());
    assertEquals(DType.INT8, int8.inputs().get(0).dtype());
    assertNull(manifest.file("assets/vocab.json").tower());
  }

  @Test
  void repeatedSignatureLength() throws IOException {
    String manifest = ExportFixture.manifest().replace("\"length\": 3", "\"length\": 5");
    Path export = ExportFixture.write(folder.resolve("repeated"), manifest);
    ExportException error = assertThrows(ExportException.class, () -> Manifest.load(export));
    assertTrue(error.getMessage().contains("artifacts[4].signatures[1] repeats the key or length of signature "
        + "'serving_default'"), error.getMessage());
  }

  @Test
  void missingExport() {
    fails(folder.resolve("nowhere"), "nowhere", "does not exist");
  }

  @Test
  void folderWithoutManifest() throws IOException {
    Path empty = Files.createDirectories(folder.resolve("empty"));
    fails(empty, "empty", "is not an export", "manifest.json");
  }

  @Test
  void badJson() throws IOException {
    Path export = ExportFixture.write(folder.resolve("bad"), "{\"name\": \"x\", \"artifacts\": [");
    fails(export, "manifest.json is corrupt", "offset");
  }

  @Test
  void missingField() throws IOException {
    String manifest = ExportFixture.manifest().replaceFirst("\"bytes\": 3, \"tower\"", "\"tower\"");
    Path export = ExportFixture.write(folder.resolve("x"), manifest);
    fails(export, "manifest.json is corrupt", "artifacts[1].bytes is missing");
  }

  @Test
  void pathOutsideTheExport() throws IOException {
    String manifest = ExportFixture.manifest().replace("tflite/image_encoder_float32.tflite", "../outside");
    Path export = ExportFixture.write(folder.resolve("x"), manifest);
    fails(export, "artifacts[1].path '../outside' points outside the export");
  }

  @Test
  void unknownVariantListsTheAvailableOnes() throws IOException {
    Path export = ExportFixture.writeDefault(folder.resolve("fixture"));
    ExportException error = assertThrows(ExportException.class,
        () -> Manifest.load(export).artifact("image", "float64"));
    assertTrue(error.getMessage().contains("'float64'"), error.getMessage());
    assertTrue(error.getMessage().endsWith("available: float32, int8"), error.getMessage());
  }

  @Test
  void rejectedVariantIsNamedWithItsShortfall() throws IOException {
    String manifest = ExportFixture.manifest().replaceFirst("}$", ", \"rejected\": {\"note\": \"not shipped\", "
        + "\"variants\": {\"int4\": {\"shortfalls\": [\"tflite/text_encoder_int4.tflite: min cosine 0.42 is "
        + "0.56 below 0.98\"], \"artifacts\": []}}}}");
    Path export = ExportFixture.write(folder.resolve("x"), manifest, "assets/vocab.json",
        "tflite/image_encoder_float32.tflite", "tflite/image_encoder_int8.tflite",
        "tflite/text_encoder_float32.tflite");
    Manifest loaded = Manifest.load(export);
    assertEquals(List.of("float32", "int8"), loaded.variants("image"));  // the rejected one is no artifact
    ExportException error = assertThrows(ExportException.class, () -> loaded.artifact("text", "int4"));
    assertTrue(error.getMessage().contains("'int4' (the export rejected it: tflite/text_encoder_int4.tflite: "
        + "min cosine 0.42 is 0.56 below 0.98); available: float32"), error.getMessage());
    assertEquals(Map.of(), Manifest.load(ExportFixture.writeDefault(folder.resolve("ok"))).rejectedVariants());
  }

  @Test
  void missingArtifactFile() throws IOException {
    Path export = ExportFixture.writeDefault(folder.resolve("fixture"));
    Files.delete(export.resolve("tflite/image_encoder_float32.tflite"));
    fails(export, "image_encoder_float32.tflite: missing");
  }

  @Test
  void sha256Mismatch() throws IOException {
    Path export = ExportFixture.writeDefault(folder.resolve("fixture"));
    Files.writeString(export.resolve("tflite/image_encoder_float32.tflite"), "abd"); // same size, other bytes
    fails(export, "image_encoder_float32.tflite: sha256", "does not match", ExportFixture.ABC_SHA256);
  }

  @Test
  void sizeMismatch() throws IOException {
    Path export = ExportFixture.writeDefault(folder.resolve("fixture"));
    Files.writeString(export.resolve("tflite/image_encoder_float32.tflite"), "abcd");
    fails(export, "image_encoder_float32.tflite: size 4 bytes does not match the manifest's 3");
  }

  @Test
  void unknownDtype() throws IOException {
    Path export = ExportFixture.write(folder.resolve("x"), ExportFixture.manifest().replace("\"uint8\"", "\"u8\""));
    fails(export, "artifacts[1].inputs[0].dtype", "'u8'");
  }

  @Test
  void valuesOutsideWhatAnExportWritesAreRefused() throws IOException {
    String manifest = ExportFixture.manifest();
    String[][] cases = {
        {"\"logit_multiplier\": 22.5", "\"logit_multiplier\": 1e308", "logit_multiplier is 1.0E308"},
        {"\"logit_multiplier\": 22.5", "\"logit_multiplier\": -1", "logit_multiplier is -1.0"},
        {"\"zero_points\": [-128]", "\"zero_points\": [1e15]", "zero_points[0] is 1000000000000000; a int8"},
        {"\"zero_points\": [-128]", "\"zero_points\": [-129]", "zero_points[0] is -129"},
        {"\"zero_points\": [-1]", "\"zero_points\": [0.5]", "zero_points[0] is 0.5; zero points are integers"},
    };
    refusesEach(manifest, cases);
  }

  /** For each {text, replacement, message part}: the manifest with the text replaced is refused as corrupt. */
  private void refusesEach(String manifest, String[][] cases) throws IOException {
    for (String[] c : cases) {
      assertTrue(manifest.contains(c[0]), c[0]);
      Path export = ExportFixture.write(folder.resolve("x" + c[1].hashCode()), manifest.replace(c[0], c[1]));
      ExportException error = assertThrows(ExportException.class, () -> Manifest.load(export), c[1]);
      assertTrue(error.getMessage().startsWith(export.resolve("manifest.json") + " is corrupt: ")
          && error.getMessage().contains(c[2]), error.getMessage());
    }
  }

  @Test
  void readsTheContract() throws IOException {
    Path export = ExportFixture.write(folder.resolve("x"),
        ExportFixture.manifestWithContract(ExportFixture.contract().replace("\"default\": \"serving_default\"",
            "\"default\": \"main\"")));
    Manifest manifest = Manifest.load(export);
    assertEquals(1, manifest.formatVersion());
    Contract contract = manifest.contract();
    assertEquals(new Contract.Image(640, 40_000, Contract.RESIZE_RULE), contract.image());
    assertEquals(new Contract.Token(List.of("<|startoftext|>"), OptionalInt.of(49406)), contract.text().start());
    assertEquals(new Contract.Token(List.of("<|endoftext|>"), OptionalInt.of(49407)), contract.text().end());
    assertEquals(50.0, contract.maxLogitScale());
    assertEquals("main", contract.defaultSignature());
    assertEquals(new Contract.Layout("tokenizer/v.json", "tokenizer/m.txt", "tokenizer/c.json"), contract.layout());
    // The cap that bounds logit_multiplier is the contract's: 60 is within PRE_CONTRACT's 100, not within 50.
    Path capped = ExportFixture.write(folder.resolve("capped"), ExportFixture.manifestWithContract(
        ExportFixture.contract()).replace("\"logit_multiplier\": 22.5", "\"logit_multiplier\": 60"));
    ExportException error = assertThrows(ExportException.class, () -> Manifest.load(capped));
    assertTrue(error.getMessage().endsWith("logit_multiplier is 60.0; an export writes a value in (0, 50.0]"),
        error.getMessage());
  }

  @Test
  void manifestWithoutFormatVersionReadsAsBeforeTheContract() throws IOException {
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("old")));
    assertEquals(0, manifest.formatVersion());
    assertEquals(Contract.PRE_CONTRACT, manifest.contract());
    assertEquals(new Contract.Image(65_535, 100_000_000L, Contract.RESIZE_RULE), manifest.contract().image());
    assertEquals(List.of("<start_of_text>", "<|startoftext|>"), manifest.contract().text().start().spellings());
    assertEquals(OptionalInt.empty(), manifest.contract().text().start().id());
    assertEquals("serving_default", manifest.contract().defaultSignature());
    assertEquals(100.0, manifest.contract().maxLogitScale());
    assertEquals("assets/vocab.json", manifest.contract().layout().vocab());
  }

  @Test
  void newerFormatVersionIsRefusedNamingTheFileFieldAndBothVersions() throws IOException {
    Path export = ExportFixture.write(folder.resolve("newer"), ExportFixture.manifestWithContract(
        ExportFixture.contract()).replace("\"format_version\": 1", "\"format_version\": 2"));
    ExportException error = assertThrows(ExportException.class, () -> Manifest.load(export));
    assertEquals(export.resolve("manifest.json") + ": format_version is 2, newer than 1, the newest this reader "
        + "knows: the export was written by a newer clip_edge; update android_demo's clip library to read it",
        error.getMessage());
  }

  @Test
  void contractThatIsMissingOrMalformedIsRefused() throws IOException {
    String manifest = ExportFixture.manifestWithContract(ExportFixture.contract());
    String[][] cases = {
        {"\"format_version\": 1", "\"format_version\": 0", "format_version is 0; an export writes an integer"},
        {"\"format_version\": 1", "\"format_version\": \"1\"", "format_version is 1; an export writes an integer"},
        {"\"contract\": {", "\"contract\": 7, \"unused\": {", "contract is not an object"},
        {"\"max_side\": 640", "\"max_side\": 0", "contract.image.max_side is 0; expected an integer from 1"},
        {"\"max_pixels\": 40000, ", "", "contract.image.max_pixels is missing"},
        {"\"spellings\": [\"<|startoftext|>\"]", "\"spellings\": []", "contract.text.start_token.spellings is empty"},
        {"\"id\": 49407", "\"id\": -1", "contract.text.end_token.id is -1"},
        {"\"max_logit_scale\": 50.0", "\"max_logit_scale\": 0", "contract.zero_shot.max_logit_scale is 0.0"},
        {"\"vocab\": \"tokenizer/v.json\", ", "", "contract.layout.vocab is missing"},
    };
    refusesEach(manifest, cases);
    Path noContract = ExportFixture.write(folder.resolve("none"),
        "{\"format_version\": 1, " + ExportFixture.manifest().substring(1));
    ExportException error = assertThrows(ExportException.class, () -> Manifest.load(noContract));
    assertTrue(error.getMessage().endsWith("is corrupt: contract is missing"), error.getMessage());
  }

  @Test
  void missingLogitMultiplierIsExplained() throws IOException {
    Path export = ExportFixture.write(folder.resolve("x"),
        ExportFixture.manifest().replace("\"logit_multiplier\": 22.5, ", ""));
    ExportException error = assertThrows(ExportException.class, () -> Manifest.load(export).logitMultiplier());
    assertTrue(error.getMessage().contains("no logit_multiplier"), error.getMessage());
  }
}
