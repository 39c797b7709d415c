package dev.clipedge.clip;

import dev.clipedge.clip.Manifest.ExportException;
import dev.clipedge.clip.Manifest.Tensor;
import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.ModelLoader;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The text tower: int32 token ids [L] (start, text, end, zero padding) -> unit-norm [D] embedding.
 *
 * <p>When the export's text encoder has length buckets (signatures taking fewer than L ids, listed in the
 * manifest), each text runs through the shortest one that holds its end token: the embedding is read at the
 * first occurrence of the largest id (the end token) and attention is causal, so the positions after it change
 * nothing, and a short prompt costs a fraction of the L-position run.
 */
public final class TextEncoder extends Encoder {
  private final int contextLength;
  private final long vocabularySize;
  /** The shorter signatures, shortest first; texts that fit none run through {@link #main}. */
  private final List<BoundSignature> buckets = new ArrayList<>();

  public TextEncoder(Manifest manifest, String variant, ModelLoader loader) {
    super(manifest, "text", variant, loader);
    this.contextLength = tokenCount(main.input, main.key);
    Object vocabulary = manifest.config().get("vocab_size");
    this.vocabularySize = vocabulary instanceof Number ? ((Number) vocabulary).longValue() : Integer.MAX_VALUE;
    try {
      for (Manifest.Signature signature : artifact.signatures()) {
        if (signature.length() >= contextLength) {
          continue; // the full length is main; a longer one would never be the shortest that fits
        }
        if (signature.inputs().size() != 1 || signature.outputs().size() != 1
            || tokenCount(signature.inputs().get(0), signature.key()) != signature.length()) {
          throw new ExportException(artifact.file() + ": signature " + signature.key() + " is not int32 token ids "
              + "[1, " + signature.length() + "] -> one embedding, as its manifest length says");
        }
        buckets.add(bind(signature.key(), signature.inputs().get(0), signature.outputs().get(0)));
      }
    } catch (RuntimeException e) {
      close();
      throw e;
    }
    buckets.sort(Comparator.comparingInt(bucket -> bucket.input.shape()[1]));
  }

  private int tokenCount(Tensor input, String key) {
    int[] shape = input.shape();
    if (shape.length != 2 || shape[0] != 1 || input.dtype() != DType.INT32 || input.quantization() != null) {
      throw new ExportException(artifact.file() + ": input " + input + " of signature " + key
          + " is not int32 token ids [1, L]");
    }
    return shape[1];
  }

  /** L, the number of token ids the encoder takes (the tokenizer's context length). */
  public int contextLength() {
    return contextLength;
  }

  /** The token counts the encoder can run, shortest first, ending with {@link #contextLength()}. */
  public List<Integer> lengths() {
    List<Integer> lengths = new ArrayList<>();
    for (BoundSignature bucket : buckets) {
      lengths.add(bucket.input.shape()[1]);
    }
    lengths.add(contextLength);
    return lengths;
  }

  /** How many of {@code tokenIds} {@link #encode} runs: the shortest length that holds the first largest id. */
  public int lengthFor(int[] tokenIds) {
    return signatureFor(tokenIds).input.shape()[1];
  }

  private BoundSignature signatureFor(int[] tokenIds) {
    int end = 0;
    for (int i = 1; i < tokenIds.length; i++) {
      if (tokenIds[i] > tokenIds[end]) {
        end = i;
      }
    }
    for (BoundSignature bucket : buckets) {
      if (end < bucket.input.shape()[1]) {
        return bucket;
      }
    }
    return main;
  }

  public float[] encode(int[] tokenIds) {
    if (tokenIds.length != contextLength) {
      throw new IllegalArgumentException("expected " + contextLength + " token ids, got " + tokenIds.length);
    }
    for (int i = 0; i < tokenIds.length; i++) {
      // An id outside the embedding table would make the gather read out of bounds.
      if (tokenIds[i] < 0 || tokenIds[i] >= vocabularySize) {
        throw new IllegalArgumentException("token id " + tokenIds[i] + " at position " + i + " is outside the "
            + "vocabulary of " + vocabularySize);
      }
    }
    BoundSignature signature = signatureFor(tokenIds);
    int length = signature.input.shape()[1];
    for (int i = 0; i < length; i++) {
      signature.inputBuffer.putInt(4 * i, tokenIds[i]);
    }
    return runAndNormalise(signature);
  }
}
