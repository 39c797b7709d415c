package dev.clipedge.clip.runtime;

import java.util.Arrays;
import java.util.stream.Collectors;

/** Element types of model tensors, named as NumPy and the export manifest name them. */
public enum DType {
  FLOAT32("float32", 4),
  FLOAT16("float16", 2),
  INT64("int64", 8),
  INT32("int32", 4),
  INT16("int16", 2),
  INT8("int8", 1),
  UINT8("uint8", 1),
  BOOL("bool", 1);

  private final String manifestName;
  private final int bytes;

  DType(String manifestName, int bytes) {
    this.manifestName = manifestName;
    this.bytes = bytes;
  }

  /** Bytes per element. */
  public int bytes() {
    return bytes;
  }

  @Override
  public String toString() {
    return manifestName;
  }

  /** The type the manifest calls {@code name} ("float32", "uint8", ...). */
  public static DType fromName(String name) {
    for (DType type : values()) {
      if (type.manifestName.equals(name)) {
        return type;
      }
    }
    throw new IllegalArgumentException("unknown dtype '" + name + "'; expected one of "
        + Arrays.stream(values()).map(DType::toString).collect(Collectors.joining(", ")));
  }
}
