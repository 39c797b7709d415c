package dev.clipedge.clip;

import dev.clipedge.clip.Manifest.ExportException;
import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.ModelLoader;

/** The text tower: int32 token ids [L] (start, text, end, zero padding) -> unit-norm [D] embedding. */
public final class TextEncoder extends Encoder {
  private final int contextLength;
  private final long vocabularySize;

  public TextEncoder(Manifest manifest, String variant, ModelLoader loader) {
    super(manifest, "text", variant, loader);
    int[] shape = input.shape();
    if (shape.length != 2 || shape[0] != 1 || input.dtype() != DType.INT32 || input.quantization() != null) {
      throw new ExportException(artifact.file() + ": input " + input + " is not int32 token ids [1, L]");
    }
    this.contextLength = shape[1];
    Object vocabulary = manifest.config().get("vocab_size");
    this.vocabularySize = vocabulary instanceof Number ? ((Number) vocabulary).longValue() : Integer.MAX_VALUE;
  }

  /** L, the number of token ids the encoder takes. */
  public int contextLength() {
    return contextLength;
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
      inputBuffer.putInt(4 * i, tokenIds[i]);
    }
    return runAndNormalise();
  }
}
