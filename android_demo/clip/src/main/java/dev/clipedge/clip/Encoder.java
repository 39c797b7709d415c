package dev.clipedge.clip;

import dev.clipedge.clip.Manifest.Artifact;
import dev.clipedge.clip.Manifest.ExportException;
import dev.clipedge.clip.Manifest.Quantization;
import dev.clipedge.clip.Manifest.Tensor;
import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.ModelLoader;
import dev.clipedge.clip.runtime.TensorInfo;
import dev.clipedge.clip.runtime.TfliteModel;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * What the image and text encoders share: a checked artifact opened with a runtime, one input and one [1, D]
 * output, the output read back (dequantised if the manifest says it is quantised) and L2-normalised.
 *
 * <p>The export contract says the embeddings are L2-normalised, but an int8 output is only approximately unit
 * norm after dequantisation, so we normalise every output again (a no-op up to rounding for float outputs).
 */
public abstract class Encoder implements AutoCloseable {
  protected final Artifact artifact;
  protected final Tensor input;
  protected final Tensor output;
  protected final ByteBuffer inputBuffer;
  private final TfliteModel model;
  private final ByteBuffer outputBuffer;
  private final int embeddingSize;

  protected Encoder(Manifest manifest, String tower, String variant, ModelLoader loader) {
    this.artifact = manifest.artifact(tower, variant);
    if (artifact.inputs().size() != 1 || artifact.outputs().size() != 1) {
      throw new ExportException(artifact.file() + ": the manifest lists " + artifact.inputs().size() + " inputs and "
          + artifact.outputs().size() + " outputs; an encoder has one of each");
    }
    this.input = artifact.inputs().get(0);
    this.output = artifact.outputs().get(0);
    int[] outputShape = output.shape();
    if (outputShape.length != 2 || outputShape[0] != 1) {
      throw new ExportException(artifact.file() + ": output " + output + " is not [1, D]");
    }
    checkDequantisable(output);
    this.embeddingSize = outputShape[1];
    this.model = loader.open(artifact.verified());
    try {
      check("input", input, model.inputs());
      check("output", output, model.outputs());
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
    this.inputBuffer = TfliteModel.allocate(model.inputs().get(0));
    this.outputBuffer = TfliteModel.allocate(model.outputs().get(0));
  }

  /** The manifest must describe the model we actually opened (a stale manifest would misread the output). */
  private void check(String side, Tensor expected, List<TensorInfo> actual) {
    if (actual.size() != 1 || !expected.matches(actual.get(0))) {
      throw new ExportException(artifact.file() + ": the model's " + side + "s are " + actual
          + " but the manifest says " + expected);
    }
  }

  private void checkDequantisable(Tensor tensor) {
    boolean quantisedInteger = (tensor.dtype() == DType.INT8 || tensor.dtype() == DType.UINT8)
        && tensor.quantization() != null && tensor.quantization().perTensor();
    if (tensor.dtype() != DType.FLOAT32 && !quantisedInteger) {
      throw new ExportException(artifact.file() + ": output " + tensor + " is neither float32 nor int8/uint8 "
          + "with per-tensor quantisation");
    }
  }

  /** D, the embedding size. */
  public int embeddingSize() {
    return embeddingSize;
  }

  /** Runs the model on {@link #inputBuffer} (filled by the subclass) and returns the unit-norm embedding. */
  protected float[] runAndNormalise() {
    model.run(new ByteBuffer[] {inputBuffer}, new ByteBuffer[] {outputBuffer});
    float[] embedding = new float[embeddingSize];
    Quantization q = output.quantization();
    for (int i = 0; i < embeddingSize; i++) {
      switch (output.dtype()) {
        case FLOAT32:
          embedding[i] = outputBuffer.getFloat(4 * i);
          break;
        case INT8:
          embedding[i] = (float) (q.scale() * (outputBuffer.get(i) - q.zeroPoint()));
          break;
        default: // UINT8, checked in the constructor
          embedding[i] = (float) (q.scale() * ((outputBuffer.get(i) & 0xff) - q.zeroPoint()));
      }
    }
    try {
      return Embeddings.l2Normalize(embedding);
    } catch (IllegalArgumentException e) {
      throw new IllegalStateException(artifact.path() + " produced an embedding that cannot be normalised: "
          + e.getMessage());
    }
  }

  @Override
  public void close() {
    model.close();
  }
}
