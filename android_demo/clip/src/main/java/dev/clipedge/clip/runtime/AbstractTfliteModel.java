package dev.clipedge.clip.runtime;

import java.nio.ByteBuffer;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What every runner of a {@link TfliteModel} shares: the signatures, described once when the model is opened and
 * looked up by key (an unknown key names the known ones), and the buffers checked against them before the runtime
 * sees them. The desktop's LiteRtJvmModel (LiteRT's C API, which would read and write past a short buffer) and the
 * app's LiteRtAndroidModel (LiteRT's CompiledModel, whose TensorBuffer only logs a wrong size) both extend it, so
 * a wrong buffer is the same error on both.
 *
 * @param <S> what the runner keeps per signature to run it (the native signature index, LiteRT's tensor buffers)
 */
public abstract class AbstractTfliteModel<S> implements TfliteModel {
  /** One signature: its key, its tensors, and the runner's handle on it. */
  protected record Signature<R>(String key, List<TensorInfo> inputs, List<TensorInfo> outputs, R runner) {
    public Signature {
      inputs = List.copyOf(inputs);
      outputs = List.copyOf(outputs);
    }
  }

  private final String name;
  private final Map<String, Signature<S>> signatures = new LinkedHashMap<>();

  /** {@code name}: how error messages name the model (its file). */
  protected AbstractTfliteModel(String name) {
    this.name = name;
  }

  /** Adds signature {@code key}, after those added before (the order of {@link #signatureKeys()}). */
  protected final void addSignature(String key, List<TensorInfo> inputs, List<TensorInfo> outputs, S runner) {
    Signature<S> signature = new Signature<>(key, inputs, outputs, runner);
    if (signatures.putIfAbsent(key, signature) != null) {
      throw new IllegalStateException(name + " has signature '" + key + "' twice");
    }
  }

  /** The signatures added so far, in order (for a runner's close). */
  protected final Collection<Signature<S>> signatures() {
    return Collections.unmodifiableCollection(signatures.values());
  }

  @Override
  public final List<String> signatureKeys() {
    return List.copyOf(signatures.keySet());
  }

  private Signature<S> signature(String key) {
    Signature<S> signature = signatures.get(key);
    if (signature == null) {
      throw new IllegalArgumentException(name + " has no signature '" + key + "'; it has " + signatures.keySet());
    }
    return signature;
  }

  @Override
  public final List<TensorInfo> inputs(String key) {
    return signature(key).inputs();
  }

  @Override
  public final List<TensorInfo> outputs(String key) {
    return signature(key).outputs();
  }

  /** Looks up signature {@code key}, checks the buffers against it (see {@link TfliteModel}), then runs it. */
  @Override
  public final void run(String key, ByteBuffer[] inputs, ByteBuffer[] outputs) {
    Signature<S> signature = signature(key);
    check("input", signature.inputs(), inputs);
    check("output", signature.outputs(), outputs);
    runChecked(signature, inputs, outputs);
  }

  /**
   * Runs {@code signature}: one direct buffer of exactly its byte size per tensor, in order, the outputs writable.
   * A closed model throws IllegalStateException.
   */
  protected abstract void runChecked(Signature<S> signature, ByteBuffer[] inputs, ByteBuffer[] outputs);

  private void check(String side, List<TensorInfo> tensors, ByteBuffer[] buffers) {
    if (buffers.length != tensors.size()) {
      throw new IllegalArgumentException(name + " takes " + tensors.size() + " " + side + " buffers, got "
          + buffers.length);
    }
    for (int i = 0; i < buffers.length; i++) {
      TensorInfo tensor = tensors.get(i);
      if (buffers[i] == null || !buffers[i].isDirect() || buffers[i].capacity() != tensor.byteSize()) {
        throw new IllegalArgumentException(side + " " + tensor + " needs a direct ByteBuffer of " + tensor.byteSize()
            + " bytes");
      }
      if (side.equals("output") && buffers[i].isReadOnly()) {
        throw new IllegalArgumentException("output " + tensor + " buffer is read-only");
      }
    }
  }

  @Override
  public String toString() {
    return getClass().getSimpleName() + "(" + name + ")";
  }
}
