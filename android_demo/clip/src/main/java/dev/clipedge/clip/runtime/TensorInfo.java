package dev.clipedge.clip.runtime;

import java.util.Arrays;

/** One input or output of a model signature: its name, element type and static shape. */
public record TensorInfo(String name, DType dtype, int[] shape) {
  public TensorInfo {
    shape = shape.clone();
  }

  @Override
  public int[] shape() {
    return shape.clone();
  }

  public long elementCount() {
    long count = 1;
    for (int dimension : shape) {
      count *= dimension;
    }
    return count;
  }

  public long byteSize() {
    return elementCount() * dtype.bytes();
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof TensorInfo that && name.equals(that.name) && dtype == that.dtype
        && Arrays.equals(shape, that.shape);
  }

  @Override
  public int hashCode() {
    return 31 * (31 * name.hashCode() + dtype.hashCode()) + Arrays.hashCode(shape);
  }

  /** {@code name dtype [d0, d1, ...]}, as error messages show it. */
  @Override
  public String toString() {
    return name + " " + dtype + " " + Arrays.toString(shape);
  }
}
