package dev.clipedge.demo;

import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.CompiledModel;
import com.google.ai.edge.litert.Environment;
import com.google.ai.edge.litert.LiteRtException;
import com.google.ai.edge.litert.TensorBuffer;
import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.runtime.AbstractTfliteModel;
import dev.clipedge.clip.runtime.ModelLoader;
import dev.clipedge.clip.runtime.TensorInfo;
import dev.clipedge.clip.runtime.TfliteModel;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@link TfliteModel} on Android: LiteRT's CompiledModel API (com.google.ai.edge.litert:litert), the runtime that
 * clip-jvm reaches through LiteRT's C API on the desktop, so the JVM tests ran the code path a phone runs up to
 * this class.
 *
 * <p>Where this differs from the desktop runner: the Kotlin API reports element types by tensor name but does
 * not list the names, so the tensor descriptions come from the export's manifest; that is safe because the
 * manifest's sha256 was checked against this very file before it was opened ({@link Manifest.Artifact#verified}).
 * TensorBuffer's write functions log instead of throwing when a size is wrong, so sizes are checked before them,
 * by the core's {@link AbstractTfliteModel} as on the desktop. The signatures are the manifest's too (a text
 * encoder's length buckets), run by key; an artifact the manifest lists without signatures has one, the contract's
 * default key.
 */
final class LiteRtAndroidModel extends AbstractTfliteModel<LiteRtAndroidModel.Buffers> {
  /** The buffers LiteRT created for one signature. */
  record Buffers(List<TensorBuffer> inputs, List<TensorBuffer> outputs) {}

  private final CompiledModel model;
  private boolean closed;

  /** Opens the export's artifacts with {@code accelerator} (LiteRT runs on the CPU what it cannot place). */
  static ModelLoader loader(Manifest manifest, Accelerator accelerator, Environment environment) {
    return file -> {
      for (Manifest.Artifact artifact : manifest.artifacts()) {
        if (artifact.file().equals(file)) {
          return new LiteRtAndroidModel(file, artifact, manifest.contract().defaultSignature(), accelerator,
              environment);
        }
      }
      throw new IllegalArgumentException(file + " is not an artifact of export " + manifest.directory());
    };
  }

  private LiteRtAndroidModel(Path file, Manifest.Artifact artifact, String defaultSignature, Accelerator accelerator,
      Environment env) {
    super(file.toString());
    CompiledModel.Options options = accelerator == Accelerator.CPU
        ? new CompiledModel.Options(Accelerator.CPU) : new CompiledModel.Options(accelerator, Accelerator.CPU);
    try {
      model = CompiledModel.create(file.toString(), options, env);
    } catch (LiteRtException e) {
      throw new IllegalStateException("LiteRT cannot open " + file + " on " + accelerator + ": " + e.getMessage(), e);
    }
    try {
      if (artifact.signatures().isEmpty()) {
        add(file, defaultSignature, artifact.inputs(), artifact.outputs());
      }
      for (Manifest.Signature signature : artifact.signatures()) {
        add(file, signature.key(), signature.inputs(), signature.outputs());
      }
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  private void add(Path file, String key, List<Manifest.Tensor> inputs, List<Manifest.Tensor> outputs) {
    List<TensorBuffer> inputBuffers;
    List<TensorBuffer> outputBuffers;
    try {
      inputBuffers = model.createInputBuffers(key);
      outputBuffers = model.createOutputBuffers(key);
    } catch (LiteRtException e) {
      throw new IllegalStateException(file + ": LiteRT cannot create the buffers of signature " + key + ": "
          + e.getMessage(), e);
    }
    // Registered before the check, so close() frees the buffers of a refused signature too.
    addSignature(key, describe(inputs), describe(outputs), new Buffers(inputBuffers, outputBuffers));
    if (inputBuffers.size() != inputs.size() || outputBuffers.size() != outputs.size()) {
      throw new IllegalStateException(file + " signature " + key + " has " + inputBuffers.size() + " inputs and "
          + outputBuffers.size() + " outputs; its manifest entry lists " + inputs.size() + " and " + outputs.size());
    }
  }

  private static List<TensorInfo> describe(List<Manifest.Tensor> tensors) {
    List<TensorInfo> described = new ArrayList<>();
    for (Manifest.Tensor tensor : tensors) {
      described.add(new TensorInfo(tensor.name(), tensor.dtype(), tensor.shape()));
    }
    return described;
  }

  @Override
  protected void runChecked(Signature<Buffers> signature, ByteBuffer[] in, ByteBuffer[] out) {
    if (closed) {
      throw new IllegalStateException("model is closed");
    }
    Buffers buffers = signature.runner();
    try {
      for (int i = 0; i < signature.inputs().size(); i++) {
        write(buffers.inputs().get(i), signature.inputs().get(i), in[i]);
      }
      model.run(buffers.inputs(), buffers.outputs(), signature.key());
      for (int i = 0; i < signature.outputs().size(); i++) {
        read(buffers.outputs().get(i), signature.outputs().get(i), out[i]);
      }
    } catch (LiteRtException e) {
      throw new IllegalStateException("LiteRT run of signature " + signature.key() + " failed: " + e.getMessage(),
          e);
    }
  }

  /** A view of all the buffer's bytes in native order (the caller's position and limit neither used nor changed). */
  private static ByteBuffer nativeOrder(ByteBuffer buffer) {
    return buffer.duplicate().clear().order(ByteOrder.nativeOrder());
  }

  private static void write(TensorBuffer target, TensorInfo tensor, ByteBuffer source) throws LiteRtException {
    ByteBuffer data = nativeOrder(source);
    int count = (int) tensor.elementCount();
    switch (tensor.dtype()) {
      case FLOAT32: {
        float[] values = new float[count];
        data.asFloatBuffer().get(values);
        target.writeFloat(values);
        break;
      }
      case INT32: {
        int[] values = new int[count];
        data.asIntBuffer().get(values);
        target.writeInt(values);
        break;
      }
      case UINT8: // copied byte for byte: writeInt8 does not look at the tensor's element type
      case INT8: {
        byte[] values = new byte[count];
        data.get(values);
        target.writeInt8(values);
        break;
      }
      default:
        throw new IllegalArgumentException("input " + tensor + ": LiteRT's Android API cannot write this type");
    }
  }

  private static void read(TensorBuffer source, TensorInfo tensor, ByteBuffer target) throws LiteRtException {
    ByteBuffer data = nativeOrder(target);
    switch (tensor.dtype()) {
      case FLOAT32:
        data.asFloatBuffer().put(source.readFloat());
        break;
      case UINT8:
      case INT8:
        data.put(source.readInt8());
        break;
      default:
        throw new IllegalArgumentException("output " + tensor + ": LiteRT's Android API cannot read this type");
    }
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (Signature<Buffers> signature : signatures()) {
      signature.runner().inputs().forEach(TensorBuffer::close);
      signature.runner().outputs().forEach(TensorBuffer::close);
    }
    model.close();
  }
}
