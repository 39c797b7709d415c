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
 * What the image and text encoders share: a checked artifact opened with a runtime, signatures with one input and
 * one [1, D] output each, the output read back (dequantised if the manifest says it is quantised) and
 * L2-normalised.
 *
 * <p>The export contract says the embeddings are L2-normalised, but an int8 output is only approximately unit
 * norm after dequantisation, so we normalise every output again (a no-op up to rounding for float outputs).
 */
public abstract class Encoder implements AutoCloseable {
  protected final Artifact artifact;
  /**
   * The signature the manifest's top-level tensors describe: the contract's default key (the only signature of an
   * image encoder, the full length of a text encoder).
   */
  protected final BoundSignature main;
  private final TfliteModel model;
  private final int embeddingSize;

  /** A signature as the encoder runs it: its manifest tensors, checked against the model, and reused buffers. */
  protected final class BoundSignature {
    final String key;
    final Tensor input;
    final Tensor output;
    final ByteBuffer inputBuffer;
    private final ByteBuffer outputBuffer;

    private BoundSignature(String key, Tensor input, Tensor output) {
      int[] outputShape = output.shape();
      if (outputShape.length != 2 || outputShape[0] != 1) {
        throw new ExportException(artifact.file() + ": output " + output + " of signature " + key + " is not [1, D]");
      }
      checkDequantisable(output);
      check(key, "input", input, model.inputs(key));
      check(key, "output", output, model.outputs(key));
      this.key = key;
      this.input = input;
      this.output = output;
      this.inputBuffer = TfliteModel.allocate(model.inputs(key).get(0));
      this.outputBuffer = TfliteModel.allocate(model.outputs(key).get(0));
    }
  }

  protected Encoder(Manifest manifest, String tower, String variant, ModelLoader loader) {
    this.artifact = manifest.artifact(tower, variant);
    if (artifact.inputs().size() != 1 || artifact.outputs().size() != 1) {
      throw new ExportException(artifact.file() + ": the manifest lists " + artifact.inputs().size() + " inputs and "
          + artifact.outputs().size() + " outputs; an encoder has one of each");
    }
    this.model = loader.open(artifact.verified());
    try {
      this.main = bind(manifest.contract().defaultSignature(), artifact.inputs().get(0), artifact.outputs().get(0));
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
    this.embeddingSize = main.output.shape()[1];
  }

  /** Checks signature {@code key} of the model against the manifest's tensors and allocates its buffers. */
  protected BoundSignature bind(String key, Tensor input, Tensor output) {
    if (!model.signatureKeys().contains(key)) {
      throw new ExportException(artifact.file() + " has no signature '" + key + "' (the manifest lists it); it has "
          + model.signatureKeys());
    }
    BoundSignature bound = new BoundSignature(key, input, output);
    if (main != null && bound.output.shape()[1] != embeddingSize) {
      throw new ExportException(artifact.file() + ": signature " + key + " outputs " + bound.output
          + ", signature " + main.key + " " + main.output + "; one encoder has one embedding size");
    }
    return bound;
  }

  /** The manifest must describe the model we actually opened (a stale manifest would misread the output). */
  private void check(String key, String side, Tensor expected, List<TensorInfo> actual) {
    if (actual.size() != 1 || !expected.matches(actual.get(0))) {
      throw new ExportException(artifact.file() + ": the model's " + side + "s of signature " + key + " are "
          + actual + " but the manifest says " + expected);
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

  /** Runs {@code signature} on its input buffer (filled by the subclass) and returns the unit-norm embedding. */
  protected float[] runAndNormalise(BoundSignature signature) {
    model.run(signature.key, new ByteBuffer[] {signature.inputBuffer}, new ByteBuffer[] {signature.outputBuffer});
    ByteBuffer buffer = signature.outputBuffer;
    float[] embedding = new float[embeddingSize];
    Quantization q = signature.output.quantization();
    for (int i = 0; i < embeddingSize; i++) {
      switch (signature.output.dtype()) {
        case FLOAT32:
          embedding[i] = buffer.getFloat(4 * i);
          break;
        case INT8:
          embedding[i] = (float) (q.scale() * (buffer.get(i) - q.zeroPoint()));
          break;
        default: // UINT8, checked in the constructor
          embedding[i] = (float) (q.scale() * ((buffer.get(i) & 0xff) - q.zeroPoint()));
      }
    }
    try {
      return Embeddings.l2Normalize(embedding);
    } catch (IllegalArgumentException e) {
      throw new IllegalStateException(artifact.path() + " [" + signature.key + "] produced an embedding that "
          + "cannot be normalised: " + e.getMessage());
    }
  }

  @Override
  public void close() {
    model.close();
  }
}
