package dev.clipedge.clip.runtime;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * A compiled .tflite model and its signatures (a text encoder has one per length bucket, sharing the weights):
 * what the CLIP encoders need from a runtime. The desktop module (clip-desktop) implements it with LiteRT's C API
 * ({@code LiteRtJvmModel}); the Android app implements it with LiteRT's CompiledModel API
 * ({@code com.google.ai.edge.litert:litert}), which runs the same runtime.
 *
 * <p>Buffers are direct, in native byte order, and hold exactly {@link TensorInfo#byteSize()} bytes of the tensor,
 * read from and written at absolute positions (position and limit are neither used nor changed); output buffers are
 * writable. {@link AbstractTfliteModel}, which both runners extend, refuses any other buffer. Implementations are
 * safe to use from one thread at a time; {@link #close()} may be called more than once.
 */
public interface TfliteModel extends AutoCloseable {
  /** The signature keys in the file's order; the first is what a runtime runs when no signature is named. */
  List<String> signatureKeys();

  /** The inputs of signature {@code key}; an unknown key is an IllegalArgumentException naming the known ones. */
  List<TensorInfo> inputs(String key);

  List<TensorInfo> outputs(String key);

  /** Runs signature {@code key}: reads every input buffer, overwrites every output buffer. */
  void run(String key, ByteBuffer[] inputs, ByteBuffer[] outputs);

  default List<TensorInfo> inputs() {
    return inputs(signatureKeys().get(0));
  }

  default List<TensorInfo> outputs() {
    return outputs(signatureKeys().get(0));
  }

  /** Runs the first signature. */
  default void run(ByteBuffer[] inputs, ByteBuffer[] outputs) {
    run(signatureKeys().get(0), inputs, outputs);
  }

  @Override
  void close();

  /** A direct buffer in native order sized for {@code tensor}. */
  static ByteBuffer allocate(TensorInfo tensor) {
    long bytes = tensor.byteSize();
    if (bytes > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("tensor " + tensor + " has more than 2 GiB");
    }
    return ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.nativeOrder());
  }

  /** Allocates the output buffers, runs, returns them. */
  default ByteBuffer[] run(ByteBuffer... inputs) {
    List<TensorInfo> outputs = outputs();
    ByteBuffer[] results = new ByteBuffer[outputs.size()];
    for (int i = 0; i < results.length; i++) {
      results[i] = allocate(outputs.get(i));
    }
    run(inputs, results);
    return results;
  }
}
