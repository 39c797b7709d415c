package dev.clipedge.clip;

import java.util.List;
import java.util.OptionalInt;

/**
 * What this core needs to process inputs as an export does: the part of manifest.json's "contract" section
 * (converters/manifest.py) it uses, read by {@link Manifest#contract()}. A manifest written before the contract
 * existed (no format_version) reads as {@link #PRE_CONTRACT}.
 *
 * <p>The constants are this code's copies of clip_edge's Python definitions, each named beside it, and the only
 * ones: tests/test_contract.py fails when one differs from its definition. They are what this code implements
 * ({@link #FORMAT_VERSION}, {@link #RESIZE_RULE}, {@link #TEXT_CLEANING_FORMAT}) and the values of exports
 * without a contract.
 */
public record Contract(Image image, Text text, double maxLogitScale, String defaultSignature, Layout layout) {
  /** The newest manifest format_version this code reads; clip_edge.export_format.FORMAT_VERSION. */
  public static final int FORMAT_VERSION = 1;
  /** The resize and crop ImagePreprocessor implements; clip_edge.preprocessing.RESIZE_RULE. */
  public static final String RESIZE_RULE = "pil_bicubic_shortest_side_centre_crop";
  /** The text_cleaning.json format TextCleaner reads; clip_edge.text_cleaning_tables.TEXT_CLEANING_FORMAT. */
  public static final int TEXT_CLEANING_FORMAT = 1;
  /** clip_edge.export_format.MANIFEST. */
  public static final String MANIFEST = "manifest.json";
  /** clip_edge.image_decoding.MAX_SIDE. */
  static final int MAX_SIDE = 65_535;
  /** clip_edge.image_decoding.MAX_PIXELS. */
  static final long MAX_PIXELS = 100_000_000L;
  /**
   * The pixels a GIF's frames may hold in all, for every export (contracts do not state it): the SavedModel's
   * decoder holds every frame, so it refuses more; clip_edge.image_decoding.MAX_GIF_PIXELS.
   */
  public static final long MAX_GIF_PIXELS = 300_000_000L;
  /** clip_edge.tokenizer.START_TOKEN_NAMES. */
  static final List<String> START_TOKEN_SPELLINGS = List.of("<start_of_text>", "<|startoftext|>");
  /** clip_edge.tokenizer.END_TOKEN_NAMES. */
  static final List<String> END_TOKEN_SPELLINGS = List.of("<end_of_text>", "<|endoftext|>");
  /** clip_edge.model.MAX_LOGIT_SCALE. */
  static final double MAX_LOGIT_SCALE = 100.0;
  /** converters.variants.DEFAULT_SIGNATURE. */
  static final String DEFAULT_SIGNATURE = "serving_default";
  /** clip_edge.export_format.VOCAB. */
  static final String VOCAB = "assets/vocab.json";
  /** clip_edge.export_format.MERGES. */
  static final String MERGES = "assets/merges.txt";
  /** clip_edge.export_format.TEXT_CLEANING. */
  static final String TEXT_CLEANING = "assets/text_cleaning.json";
  /** The fractional bits of Pillow's fixed-point resize weights; clip_edge.preprocessing.PIL_WEIGHT_BITS. */
  public static final int PIL_WEIGHT_BITS = 22;
  /** Keys' cubic parameter of Pillow's BICUBIC filter; clip_edge.preprocessing.PIL_BICUBIC_A. */
  public static final double PIL_BICUBIC_A = -0.5;
  /** The bytes that stand for themselves in GPT-2's byte map, inclusive ranges; clip_edge.tokenizer.PRINTABLE_BYTES. */
  public static final List<List<Integer>> PRINTABLE_BYTES = List.of(List.of(33, 126), List.of(161, 172),
      List.of(174, 255));

  /**
   * The contract of a manifest without one (no format_version): the values every export had before manifests
   * stated them, the special-token ids left to the vocabulary. Also the limits for images preprocessed without an
   * export (clip-jvm preprocess).
   */
  public static final Contract PRE_CONTRACT = new Contract(new Image(MAX_SIDE, MAX_PIXELS, RESIZE_RULE),
      new Text(new Token(START_TOKEN_SPELLINGS, OptionalInt.empty()), new Token(END_TOKEN_SPELLINGS,
          OptionalInt.empty())), MAX_LOGIT_SCALE, DEFAULT_SIGNATURE, new Layout(VOCAB, MERGES, TEXT_CLEANING));

  /**
   * Image inputs: the largest side and area the export accepts (the SavedModel refuses larger images, and the
   * export's preprocess.tflite gives wrong pixels beyond them), and the name of its resize and crop.
   */
  public record Image(int maxSide, long maxPixels, String resize) {
    /** Refuses the sizes the export refuses, as an IllegalArgumentException with the size in the message. */
    public void checkSize(int width, int height) {
      String size = "image of " + width + " x " + height + " pixels (width x height)";
      if (width <= 0 || height <= 0) {
        throw new IllegalArgumentException(size + " has no pixels");
      }
      if (Math.max(width, height) > maxSide) {
        throw new IllegalArgumentException(size + " has a side longer than " + maxSide + " pixels");
      }
      if ((long) width * height > maxPixels) {
        throw new IllegalArgumentException(size + " is larger than " + (maxPixels % 1_000_000 == 0
            ? maxPixels / 1_000_000 + " megapixels" : maxPixels + " pixels"));
      }
    }
  }

  /**
   * A special token: the spellings a vocabulary may give it (the first found in vocab.json is it), and its id when
   * the manifest states one (the tokenizer then checks the vocabulary against it).
   */
  public record Token(List<String> spellings, OptionalInt id) {
    public Token {
      spellings = List.copyOf(spellings);
    }
  }

  /** Text inputs: the start and end tokens. */
  public record Text(Token start, Token end) {}

  /** Where the tokenizer's files are, relative to the export folder. */
  public record Layout(String vocab, String merges, String textCleaning) {}
}
