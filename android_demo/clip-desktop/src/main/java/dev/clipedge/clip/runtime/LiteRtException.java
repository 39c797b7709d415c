package dev.clipedge.clip.runtime;

/** A LiteRT C API call returned an error; the message names the call and the LiteRtStatus. */
public final class LiteRtException extends RuntimeException {
  public LiteRtException(String message) {
    super(message);
  }
}
