package dev.clipedge.demo;

import android.content.ContentResolver;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;
import dev.clipedge.clip.Contract;
import java.io.IOException;
import java.io.InputStream;

/**
 * A photo decoded at full size to unpremultiplied ARGB (the core composites alpha and does PIL's resize itself;
 * Android's scaling is bilinear only), its size checked against the export's limits before decoding.
 */
final class Pixels {
  private Pixels() {}

  record Decoded(int[] argb, int width, int height) {}

  static Decoded decode(ContentResolver resolver, Uri uri, Contract.Image limits) throws IOException {
    BitmapFactory.Options bounds = new BitmapFactory.Options();
    bounds.inJustDecodeBounds = true;
    try (InputStream in = resolver.openInputStream(uri)) {
      BitmapFactory.decodeStream(in, null, bounds);
    }
    if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
      throw new IOException("not an image Android can decode");
    }
    try {
      limits.checkSize(bounds.outWidth, bounds.outHeight);
    } catch (IllegalArgumentException e) {
      throw new IOException(e.getMessage(), e);
    }
    BitmapFactory.Options options = new BitmapFactory.Options();
    options.inPreferredConfig = Bitmap.Config.ARGB_8888;
    options.inPremultiplied = false;
    Bitmap bitmap;
    try (InputStream in = resolver.openInputStream(uri)) {
      bitmap = BitmapFactory.decodeStream(in, null, options);
    }
    if (bitmap == null) {
      throw new IOException("the photo could not be decoded");
    }
    int width = bitmap.getWidth();
    int height = bitmap.getHeight();
    int[] argb = new int[width * height];
    bitmap.getPixels(argb, 0, width, 0, 0, width, height);
    bitmap.recycle();
    return new Decoded(argb, width, height);
  }
}
