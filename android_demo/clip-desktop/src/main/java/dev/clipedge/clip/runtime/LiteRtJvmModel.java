package dev.clipedge.clip.runtime;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@link TfliteModel} on the desktop JVM: LiteRT's C API (libLiteRt.so of the ai-edge-litert wheel) through the
 * JNI shim src/main/c/litert_jni.c, whose path the system property {@value #LIBRARY_PROPERTY} names
 * (android_demo/clip-jvm sets it). Same runtime as Android's CompiledModel. The core's {@link AbstractTfliteModel}
 * looks signatures up and checks the buffers; each signature's runner handle is its index on the native side.
 */
public final class LiteRtJvmModel extends AbstractTfliteModel<Integer> {
  public static final String LIBRARY_PROPERTY = "clipedge.litert.jni";

  /** LiteRT's hardware accelerator bits (LiteRtHwAccelerators). */
  public enum Accelerator {
    CPU(1),
    GPU(2),
    NPU(4);

    final int bit;

    Accelerator(int bit) {
      this.bit = bit;
    }
  }

  private static boolean loaded;

  private final Path file;
  private long handle;

  private LiteRtJvmModel(Path file, long handle) {
    super(file.toString());
    this.file = file;
    this.handle = handle;
    try {
      int count = nativeSignatureCount(handle);
      for (int s = 0; s < count; s++) {
        addSignature(nativeSignatureKey(handle, s), describe(s, false), describe(s, true), s);
      }
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  /**
   * How to compile a model: the accelerators to use (LiteRT runs on the CPU whatever they cannot), the CPU
   * accelerator's thread count (0: LiteRT's default), and whether LiteRT may log below error level to stderr.
   */
  public record Options(List<Accelerator> accelerators, int cpuThreads, boolean runtimeLogs) {
    public Options {
      accelerators = List.copyOf(accelerators);
      if (accelerators.isEmpty()) {
        throw new IllegalArgumentException("no accelerator given");
      }
      if (cpuThreads < 0) {
        throw new IllegalArgumentException("cpu threads must be >= 0, got " + cpuThreads);
      }
    }

    /** The CPU only, with {@code cpuThreads} threads (0: LiteRT's default). */
    public static Options cpu(int cpuThreads) {
      return new Options(List.of(Accelerator.CPU), cpuThreads, false);
    }
  }

  /** Opens {@code file} on LiteRT's CPU accelerator with the runtime's default thread count. */
  public static LiteRtJvmModel open(Path file) {
    return open(file, Options.cpu(0));
  }

  public static LiteRtJvmModel open(Path file, Options options) {
    if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
      throw new IllegalArgumentException(file + ": no such readable model file");
    }
    int bits = 0;
    for (Accelerator accelerator : options.accelerators()) {
      bits |= accelerator.bit;
    }
    loadLibrary();
    return new LiteRtJvmModel(file, nativeOpen(file.toAbsolutePath().toString(), bits, options.cpuThreads(),
        options.runtimeLogs()));
  }

  static synchronized void loadLibrary() {
    if (loaded) {
      return;
    }
    String path = System.getProperty(LIBRARY_PROPERTY);
    if (path == null || path.isEmpty()) {
      throw new IllegalStateException("system property " + LIBRARY_PROPERTY + " is not set: run through "
          + "android_demo/clip-jvm, or pass -D" + LIBRARY_PROPERTY + "=/path/to/libclipedge_litert_jni.so");
    }
    if (!Files.isRegularFile(Path.of(path))) {
      throw new IllegalStateException(LIBRARY_PROPERTY + " names " + path + ", which does not exist");
    }
    try {
      System.load(Path.of(path).toAbsolutePath().toString());
    } catch (UnsatisfiedLinkError e) {
      throw new IllegalStateException("cannot load the LiteRT JNI library " + path + ": " + e.getMessage());
    }
    loaded = true;
  }

  private List<TensorInfo> describe(int signature, boolean output) {
    int count = nativeCount(handle, signature, output);
    List<TensorInfo> tensors = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      String name = nativeName(handle, signature, output, i);
      long[] type = nativeType(handle, signature, output, i);
      int[] shape = new int[type.length - 2];
      for (int d = 0; d < shape.length; d++) {
        shape[d] = (int) type[2 + d];
      }
      TensorInfo tensor = new TensorInfo(name, dtype((int) type[0], name), shape);
      // Managed buffers may be padded, but the packed size of a static-shape tensor is exactly its bytes.
      if (tensor.byteSize() != type[1]) {
        throw new LiteRtException(file + ": " + tensor + " has a buffer of " + type[1] + " bytes, expected "
            + tensor.byteSize() + " (dynamic shape?)");
      }
      tensors.add(tensor);
    }
    return tensors;
  }

  /** LiteRtElementType (= TfLiteType) codes. */
  private DType dtype(int code, String tensor) {
    switch (code) {
      case 1:
        return DType.FLOAT32;
      case 2:
        return DType.INT32;
      case 3:
        return DType.UINT8;
      case 4:
        return DType.INT64;
      case 6:
        return DType.BOOL;
      case 7:
        return DType.INT16;
      case 9:
        return DType.INT8;
      case 10:
        return DType.FLOAT16;
      default:
        throw new LiteRtException(file + ": tensor " + tensor + " has element type " + code
            + ", which clip_edge does not use");
    }
  }

  @Override
  protected synchronized void runChecked(Signature<Integer> signature, ByteBuffer[] inputs, ByteBuffer[] outputs) {
    if (handle == 0) {
      throw new IllegalStateException(file + " is closed");
    }
    nativeRun(handle, signature.runner(), inputs, outputs);
  }

  @Override
  public synchronized void close() {
    long toClose = handle;
    handle = 0;
    if (toClose != 0) {
      nativeClose(toClose);
    }
  }

  private static native long nativeOpen(String path, int accelerators, int cpuThreads, boolean runtimeLogs);

  private static native int nativeSignatureCount(long handle);

  private static native String nativeSignatureKey(long handle, int signature);

  private static native int nativeCount(long handle, int signature, boolean output);

  private static native String nativeName(long handle, int signature, boolean output, int index);

  private static native long[] nativeType(long handle, int signature, boolean output, int index);

  private static native void nativeRun(long handle, int signature, ByteBuffer[] inputs, ByteBuffer[] outputs);

  private static native void nativeClose(long handle);
}
