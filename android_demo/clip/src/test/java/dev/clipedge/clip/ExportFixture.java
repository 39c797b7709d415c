package dev.clipedge.clip;

import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.TensorInfo;
import dev.clipedge.clip.runtime.TfliteModel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Crafted export folders for the manifest, encoder and tokenizer tests (no real model needed). */
public final class ExportFixture {
  /**
   * A model that reports the tensors {@link #manifest()} lists for the float32 image and text encoders and the
   * int8 image encoder (chosen by file name), cannot run, and records being closed: for what happens around a
   * runtime (which files are opened, what is closed).
   */
  static final class DescribedModel implements TfliteModel {
    private final TensorInfo input;
    private final TensorInfo output;
    boolean closed;

    DescribedModel(Path file) {
      String name = file.getFileName().toString();
      boolean int8 = name.equals("image_encoder_int8.tflite");
      input = name.startsWith("image")
          ? new TensorInfo("pixels", int8 ? DType.INT8 : DType.UINT8, new int[] {1, 4, 4, 3})
          : new TensorInfo("token_ids", DType.INT32, new int[] {1, 5});
      output = new TensorInfo("embedding", int8 ? DType.INT8 : DType.FLOAT32, new int[] {1, 2});
    }

    @Override
    public List<String> signatureKeys() {
      return List.of("serving_default");
    }

    @Override
    public List<TensorInfo> inputs(String key) {
      return List.of(input);
    }

    @Override
    public List<TensorInfo> outputs(String key) {
      return List.of(output);
    }

    @Override
    public void run(String key, ByteBuffer[] inputs, ByteBuffer[] outputs) {
      throw new AssertionError("not run in this test");
    }

    @Override
    public void close() {
      closed = true;
    }
  }

  /** FIPS 180-2's first SHA-256 test vector: the digest of "abc". */
  static final String ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

  private ExportFixture() {}

  /** An artifact entry for a 3-byte file whose sha256 is {@link #ABC_SHA256}. */
  static String artifact(String path, String tower, String variant, String input, String output) {
    return "{\"path\": \"" + path + "\", \"sha256\": \"" + ABC_SHA256 + "\", \"bytes\": 3, \"tower\": \"" + tower
        + "\", \"variant\": \"" + variant + "\", \"inputs\": [" + input + "], \"outputs\": [" + output + "]}";
  }

  static String tensor(String name, String dtype, String shape, String quantization) {
    return "{\"name\": \"" + name + "\", \"dtype\": \"" + dtype + "\", \"shape\": " + shape
        + ", \"quantization\": " + quantization + "}";
  }

  /** DIR with manifest.json = {@code manifest} and each listed file holding "abc". */
  public static Path write(Path directory, String manifest, String... files) throws IOException {
    Files.createDirectories(directory);
    Files.writeString(directory.resolve("manifest.json"), manifest, StandardCharsets.UTF_8);
    for (String file : files) {
      Path path = directory.resolve(file);
      Files.createDirectories(path.getParent());
      Files.writeString(path, "abc", StandardCharsets.UTF_8);
    }
    return directory;
  }

  /**
   * A manifest with a float32 and an int8 image encoder (R = 4, D = 2), a float32 text encoder (L = 5) and the
   * bucketed text encoder of {@link #bucketedText()}.
   */
  static String manifest() {
    String pixels = tensor("serving_default_pixels:0", "uint8", "[1, 4, 4, 3]", "null");
    return "{\"name\": \"fixture\", \"config\": {\"image_resolution\": 4, \"context_length\": 5, "
        + "\"vocab_size\": 100}, \"logit_multiplier\": 22.5, \"artifacts\": ["
        + "{\"path\": \"assets/vocab.json\", \"sha256\": \"" + ABC_SHA256 + "\", \"bytes\": 3}, "
        + artifact("tflite/image_encoder_float32.tflite", "image", "float32", pixels,
            tensor("StatefulPartitionedCall:0", "float32", "[1, 2]", "null")) + ", "
        + artifact("tflite/image_encoder_int8.tflite", "image", "int8",
            tensor("serving_default_pixels:0", "int8", "[1, 4, 4, 3]",
                "{\"scales\": [1.0], \"zero_points\": [-128]}"),
            tensor("StatefulPartitionedCall:0", "int8", "[1, 2]", "{\"scales\": [0.5], \"zero_points\": [-1]}"))
        + ", "
        + artifact("tflite/text_encoder_float32.tflite", "text", "float32",
            tensor("serving_default_token_ids:0", "int32", "[1, 5]", "null"),
            tensor("StatefulPartitionedCall:0", "float32", "[1, 2]", "null"))
        + ", " + bucketedText()
        + "]}";
  }

  /** A dynamic_int8 text encoder with a length bucket: signatures serving_default (L = 5) and tokens_3. */
  static String bucketedText() {
    String full = tensor("serving_default_token_ids:0", "int32", "[1, 5]", "null");
    String output = tensor("StatefulPartitionedCall:0", "float32", "[1, 2]", "null");
    String entry = artifact("tflite/text_encoder_dynamic_int8.tflite", "text", "dynamic_int8", full, output);
    return entry.substring(0, entry.length() - 1) + ", \"signatures\": ["
        + "{\"key\": \"serving_default\", \"length\": 5, \"inputs\": [" + full + "], \"outputs\": [" + output
        + "]}, {\"key\": \"tokens_3\", \"length\": 3, \"inputs\": ["
        + tensor("tokens_3_token_ids:0", "int32", "[1, 3]", "null") + "], \"outputs\": [" + output + "]}]}";
  }

  /**
   * A contract section as converters/manifest.py writes it, for the fixture's model and OpenAI's vocabulary. Where
   * a reader could fall back to {@link Contract#PRE_CONTRACT} unnoticed, its values differ from that: smaller
   * limits, another logit-scale cap, one spelling per special token, tokenizer files under other names.
   */
  public static String contract() {
    return "{\"image\": {\"resolution\": 4, \"mean\": [0.48145466, 0.4578275, 0.40821073], "
        + "\"std\": [0.26862954, 0.26130258, 0.27577711], \"max_side\": 640, \"max_pixels\": 40000, "
        + "\"resize\": \"" + Contract.RESIZE_RULE + "\"}, "
        + "\"text\": {\"context_length\": 5, "
        + "\"start_token\": {\"id\": 49406, \"spellings\": [\"<|startoftext|>\"]}, "
        + "\"end_token\": {\"id\": 49407, \"spellings\": [\"<|endoftext|>\"]}, "
        + "\"text_cleaning_format\": 1, \"bucket_lengths\": [3, 5]}, "
        + "\"zero_shot\": {\"max_logit_scale\": 50.0}, "
        + "\"signatures\": {\"default\": \"serving_default\", \"saved_model\": [\"tokenize\", \"encode_text\", "
        + "\"encode_image\", \"encode_pixels\", \"serving_default\"], "
        + "\"text_buckets\": {\"3\": \"tokens_3\", \"5\": \"serving_default\"}}, "
        + "\"layout\": {\"manifest\": \"manifest.json\", \"report\": \"parity_report.md\", "
        + "\"saved_model\": \"saved_model\", \"rejected\": \"rejected\", \"vocab\": \"tokenizer/v.json\", "
        + "\"merges\": \"tokenizer/m.txt\", \"text_cleaning\": \"tokenizer/c.json\", "
        + "\"preprocess\": \"tflite/preprocess.tflite\", \"zero_shot_labels\": \"assets/zero_shot_labels.txt\", "
        + "\"zero_shot_templates\": \"assets/zero_shot_templates.txt\"}}";
  }

  /** {@link #manifest()} as format_version 1 writes it: with {@code contract} (see {@link #contract()}). */
  static String manifestWithContract(String contract) {
    return "{\"format_version\": 1, \"contract\": " + contract + ", " + manifest().substring(1);
  }

  static Path writeDefault(Path directory) throws IOException {
    return write(directory, manifest(), "assets/vocab.json", "tflite/image_encoder_float32.tflite",
        "tflite/image_encoder_int8.tflite", "tflite/text_encoder_float32.tflite",
        "tflite/text_encoder_dynamic_int8.tflite");
  }
}
