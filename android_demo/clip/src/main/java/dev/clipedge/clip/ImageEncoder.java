package dev.clipedge.clip;

import dev.clipedge.clip.Manifest.ExportException;
import dev.clipedge.clip.Manifest.Quantization;
import dev.clipedge.clip.Manifest.Tensor;
import dev.clipedge.clip.image.ImagePreprocessor;
import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.ModelLoader;

/**
 * The image tower: RGB pixels already resized and centre-cropped to R x R (uint8, HWC) -> unit-norm [D] embedding.
 * R and D come from the export's manifest.
 */
public final class ImageEncoder extends Encoder {
  private final int resolution;
  private final Contract.Image contract;

  public ImageEncoder(Manifest manifest, String variant, ModelLoader loader) {
    super(manifest, "image", variant, loader);
    Tensor input = main.input;
    int[] shape = input.shape();
    if (shape.length != 4 || shape[0] != 1 || shape[1] != shape[2] || shape[3] != 3) {
      throw new ExportException(artifact.file() + ": input " + input + " is not [1, R, R, 3]");
    }
    boolean raw = input.dtype() == DType.UINT8 && input.quantization() == null;
    boolean quantised = (input.dtype() == DType.UINT8 || input.dtype() == DType.INT8)
        && input.quantization() != null && input.quantization().perTensor();
    if (!raw && !quantised) {
      throw new ExportException(artifact.file() + ": input " + input + " is not uint8 pixels (or int8/uint8 with "
          + "per-tensor quantisation)");
    }
    this.resolution = shape[1];
    this.contract = manifest.contract().image();
  }

  /** R, the side of the square image the encoder takes. */
  public int resolution() {
    return resolution;
  }

  /** The resize and crop to this encoder's input, with the export's limits. */
  public ImagePreprocessor preprocessor() {
    return new ImagePreprocessor(resolution, contract);
  }

  /** {@code rgb}: R * R * 3 bytes, rows top to bottom, pixels R, G, B (what ImagePreprocessor returns). */
  public float[] encode(byte[] rgb) {
    int size = resolution * resolution * 3;
    if (rgb.length != size) {
      throw new IllegalArgumentException("expected " + size + " RGB bytes (" + resolution + "x" + resolution
          + "x3), got " + rgb.length);
    }
    Tensor input = main.input;
    Quantization q = input.quantization();
    if (q == null) {
      main.inputBuffer.put(0, rgb);
    } else {
      // The quantised input stands for the pixel values 0..255: q = round(p / scale) + zero point, clamped.
      long low = input.dtype() == DType.INT8 ? -128 : 0;
      long high = input.dtype() == DType.INT8 ? 127 : 255;
      for (int i = 0; i < size; i++) {
        long value = Math.round((rgb[i] & 0xff) / q.scale()) + q.zeroPoint();
        main.inputBuffer.put(i, (byte) Math.max(low, Math.min(high, value)));
      }
    }
    return runAndNormalise(main);
  }
}
