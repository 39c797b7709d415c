package dev.clipedge.demo;

import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.CompiledModel;
import com.google.ai.edge.litert.Environment;
import com.google.ai.edge.litert.LiteRtException;
import com.google.ai.edge.litert.TensorBuffer;
import dev.clipedge.clip.Manifest;
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
 * TensorBuffer's write functions log instead of throwing when a size is wrong, so sizes are checked here.
 */
final class LiteRtAndroidModel implements TfliteModel {
  private final CompiledModel model;
  private final List<TensorBuffer> inputBuffers;
  private final List<TensorBuffer> outputBuffers;
  private final List<TensorInfo> inputs;
  private final List<TensorInfo> outputs;
  private boolean closed;

  /** Opens the export's artifacts with {@code accelerator} (LiteRT runs on the CPU what it cannot place). */
  static ModelLoader loader(Manifest manifest, Accelerator accelerator, Environment environment) {
    return file -> {
      for (Manifest.Artifact artifact : manifest.artifacts()) {
        if (artifact.file().equals(file)) {
          return new LiteRtAndroidModel(file, artifact, accelerator, environment);
        }
      }
      throw new IllegalArgumentException(file + " is not an artifact of export " + manifest.directory());
    };
  }

  private LiteRtAndroidModel(Path file, Manifest.Artifact artifact, Accelerator accelerator, Environment env) {
    inputs = describe(artifact.inputs());
    outputs = describe(artifact.outputs());
    CompiledModel.Options options = accelerator == Accelerator.CPU
        ? new CompiledModel.Options(Accelerator.CPU) : new CompiledModel.Options(accelerator, Accelerator.CPU);
    try {
      model = CompiledModel.create(file.toString(), options, env);
      inputBuffers = model.createInputBuffers();
      outputBuffers = model.createOutputBuffers();
    } catch (LiteRtException e) {
      throw new IllegalStateException("LiteRT cannot open " + file + " on " + accelerator + ": " + e.getMessage(), e);
    }
    if (inputBuffers.size() != inputs.size() || outputBuffers.size() != outputs.size()) {
      close();
      throw new IllegalStateException(file + " has " + inputBuffers.size() + " inputs and " + outputBuffers.size()
          + " outputs; its manifest entry lists " + inputs.size() + " and " + outputs.size());
    }
  }

  private static List<TensorInfo> describe(List<Manifest.Tensor> tensors) {
    List<TensorInfo> described = new ArrayList<>();
    for (Manifest.Tensor tensor : tensors) {
      described.add(new TensorInfo(tensor.name(), tensor.dtype(), tensor.shape()));
    }
    return List.copyOf(described);
  }

  @Override
  public List<TensorInfo> inputs() {
    return inputs;
  }

  @Override
  public List<TensorInfo> outputs() {
    return outputs;
  }

  @Override
  public void run(ByteBuffer[] in, ByteBuffer[] out) {
    if (closed) {
      throw new IllegalStateException("model is closed");
    }
    try {
      for (int i = 0; i < inputs.size(); i++) {
        write(inputBuffers.get(i), inputs.get(i), in[i]);
      }
      model.run(inputBuffers, outputBuffers);
      for (int i = 0; i < outputs.size(); i++) {
        read(outputBuffers.get(i), outputs.get(i), out[i]);
      }
    } catch (LiteRtException e) {
      throw new IllegalStateException("LiteRT run failed: " + e.getMessage(), e);
    }
  }

  private static ByteBuffer checked(TensorInfo tensor, ByteBuffer buffer) {
    if (buffer.capacity() != tensor.byteSize()) {
      throw new IllegalArgumentException("buffer of " + buffer.capacity() + " bytes for " + tensor + " ("
          + tensor.byteSize() + " bytes)");
    }
    return buffer.duplicate().order(ByteOrder.nativeOrder());
  }

  private static void write(TensorBuffer target, TensorInfo tensor, ByteBuffer source) throws LiteRtException {
    ByteBuffer data = checked(tensor, source);
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
    ByteBuffer data = checked(tensor, target);
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
    for (TensorBuffer buffer : inputBuffers) {
      buffer.close();
    }
    for (TensorBuffer buffer : outputBuffers) {
      buffer.close();
    }
    model.close();
  }
}
