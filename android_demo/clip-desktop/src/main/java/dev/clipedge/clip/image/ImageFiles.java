package dev.clipedge.clip.image;

import dev.clipedge.clip.Contract;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.BufferedInputStream;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Locale;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.event.IIOReadWarningListener;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;

/**
 * Image files to ARGB pixels on the desktop JVM (javax.imageio; an Android app decodes with BitmapFactory and
 * passes Bitmap.getPixels to {@link ImagePreprocessor#fromArgb} instead). Formats and conventions follow
 * clip_edge/image_decoding.py: PNG, JPEG, GIF (first frame) and BMP, recognised by their first bytes; grey
 * replicated; PNG and GIF transparency kept as alpha (the preprocessor composites it onto white); the fourth
 * channel of 32-bit BMPs ignored; 16-bit samples cut to their high byte, as TensorFlow's PNG decoder does; EXIF
 * orientation ignored (pixels as stored), as Pillow's Image.open and TensorFlow ignore it.
 *
 * <p>Sample values are read from the decoded raster as stored, never through BufferedImage.getRGB: that converts
 * from the file's colour space (grey is linear in Java, so getRGB would brighten every grey image; an embedded
 * ICC profile would be applied), where PIL and TensorFlow's decoders pass the stored values through.
 *
 * <p>Where ImageIO's reading differs from Pillow's, the rule the SavedModel follows is applied here too: JPEGs of
 * four components (CMYK, YCCK), which ImageIO refuses or colour-converts its own way, are read unconverted and
 * converted by CmykJpeg; a GIF's first frame, which ImageIO gives alone, is placed on its logical screen
 * as Pillow shows it (GifScreen, below); an interlaced first frame of 2 to 4 rows, which the JDK's GIF reader
 * misreads, is decoded as stored and put in order here (jdkMisreadsInterlacing, below).
 *
 * <p>PNG, GIF and BMP decode to exactly the pixels the SavedModel decodes. JPEG may differ slightly: the JDK's
 * JPEG decoder is its own build of the IJG code, not libjpeg-turbo with INTEGER_ACCURATE as the SavedModel's
 * decode_jpeg (and PIL) use, so its inverse DCT and chroma upsampling can round some pixels differently (for the
 * CMYK and YCCK files of the tests they round none differently: the pixels are the SavedModel's).
 *
 * <p>The declared width and height are read from the header (ImageReader.getWidth/getHeight) and checked against
 * the export's limits (its contract's) before any pixel is decoded. A GIF is checked as the SavedModel checks it,
 * which decodes every frame: its screen grown to hold every frame, and the pixels of all frames (GifLayout).
 * Every problem is an {@link ImageFileException} naming the file.
 */
public final class ImageFiles {
  /** GIF's interlace passes, in the order their rows are stored: (first row, step). */
  private static final int[][] INTERLACE_PASSES = {{0, 8}, {4, 8}, {2, 4}, {1, 2}};

  private ImageFiles() {}

  /** Decoded pixels: 0xAARRGGBB, not premultiplied, row-major. */
  public record Argb(int[] pixels, int width, int height) {}

  /** An unreadable, corrupt, unsupported or oversized image file; the message names the file. */
  public static final class ImageFileException extends IOException {
    ImageFileException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private enum Format {
    JPEG("jpeg", new byte[] {(byte) 0xFF, (byte) 0xD8, (byte) 0xFF}),
    PNG("png", new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}),
    GIF("gif", new byte[] {'G', 'I', 'F', '8'}),
    BMP("bmp", new byte[] {'B', 'M'});

    final String readerName;
    final byte[] signature;

    Format(String readerName, byte[] signature) {
      this.readerName = readerName;
      this.signature = signature;
    }
  }

  /** The pixels of {@code file}, refused without decoding them when its header gives a size beyond {@code limits}. */
  public static Argb read(Path file, Contract.Image limits) throws ImageFileException {
    String label = "image " + file;
    if (!Files.exists(file)) {
      throw new ImageFileException(label + ": no such file", null);
    }
    if (!Files.isRegularFile(file)) {
      throw new ImageFileException(label + ": not a regular file", null);
    }
    Format format;
    try (InputStream in = Files.newInputStream(file)) {
      format = format(in.readNBytes(8), label);
    } catch (NoSuchFileException e) {
      throw new ImageFileException(label + ": no such file", e);
    } catch (IOException e) {
      throw new ImageFileException(label + ": cannot read: " + e.getMessage(), e);
    }
    CmykJpeg.Header jpeg = null;
    GifLayout gif = null;
    if (format != Format.BMP) {
      try (InputStream in = new BufferedInputStream(Files.newInputStream(file))) {
        if (format == Format.PNG) {
          PngChunks.checkCriticalCrcs(in, label);
        } else if (format == Format.JPEG) {
          jpeg = CmykJpeg.readHeader(in);
        } else {
          gif = GifLayout.read(in);
        }
      } catch (ImageFileException e) {
        throw e;
      } catch (IOException e) {
        throw new ImageFileException(label + ": cannot read: " + e.getMessage(), e);
      }
    }
    if (gif != null) {
      checkGif(gif, label, limits);
    }
    boolean ownInterlacing = gif != null && jdkMisreadsInterlacing(gif.first());
    try (ImageInputStream stream = ownInterlacing ? notInterlaced(file, gif.first(), label)
        : ImageIO.createImageInputStream(file.toFile())) {
      if (stream == null) {
        throw new ImageFileException(label + ": cannot open", null);
      }
      ImageReader reader = readerFor(format, label);
      try {
        return decode(reader, stream, format, jpeg, gif, ownInterlacing, label, limits);
      } finally {
        reader.dispose();
      }
    } catch (ImageFileException e) {
      throw e;
    } catch (IOException | RuntimeException e) {
      // ImageIO reports corrupt data as IIOException, and some readers as runtime exceptions
      // (ArrayIndexOutOfBounds and the like); either way it is this file's fault.
      String reason = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
      throw new ImageFileException(label + ": cannot decode " + format + ": " + reason.replace('\n', ' '), e);
    }
  }

  private static Format format(byte[] head, String label) throws ImageFileException {
    if (head.length == 0) {
      throw new ImageFileException(label + " is empty (0 bytes)", null);
    }
    for (Format format : Format.values()) {
      if (head.length >= format.signature.length
          && Arrays.equals(head, 0, format.signature.length, format.signature, 0, format.signature.length)) {
        return format;
      }
    }
    StringBuilder first = new StringBuilder();
    for (byte b : head) {
      first.append(first.length() == 0 ? "" : " ").append(String.format("%02x", b & 0xFF));
    }
    throw new ImageFileException(label + " is not a JPEG, PNG, GIF or BMP file; its first bytes are " + first, null);
  }

  private static ImageReader readerFor(Format format, String label) throws ImageFileException {
    Iterator<ImageReader> readers = ImageIO.getImageReadersByFormatName(format.readerName);
    if (!readers.hasNext()) {
      throw new ImageFileException(label + ": this JVM has no " + format + " decoder", null);
    }
    return readers.next();
  }

  private static Argb decode(ImageReader reader, ImageInputStream stream, Format format, CmykJpeg.Header jpeg,
      GifLayout gif, boolean ownInterlacing, String label, Contract.Image limits) throws IOException {
    reader.setInput(stream, true, true);
    // ImageIO reports libjpeg's warnings and decodes on. A file that ends before its image ("Truncated File -
    // Missing EOI marker") Pillow and TensorFlow refuse, and so do we; bad data within the scan that libjpeg
    // resyncs past ("Corrupt JPEG data: ...", e.g. bytes inserted mid-scan, or an end marker before the last row)
    // they decode as libjpeg recovers it, and so do we: every decoder of the product takes the same files. So is
    // an Adobe colour transform libjpeg does not know, which it takes for YCCK (CmykJpeg) as they do.
    reader.addIIOReadWarningListener(new IIOReadWarningListener() {
      @Override
      public void warningOccurred(ImageReader source, String warning) {
        if (!warning.startsWith("Corrupt JPEG data") && !warning.startsWith("Unknown Adobe color transform code")) {
          throw new IllegalStateException(warning);
        }
      }
    });
    int width = reader.getWidth(0);
    int height = reader.getHeight(0);
    if (gif != null) {
      // Checked with the layout (checkGif), whose first frame is the one placed on the screen: it must be ImageIO's.
      checkDecodedSize(width, height, gif.first().width(), gif.first().height(), label);
    } else {
      try {
        limits.checkSize(width, height);
      } catch (IllegalArgumentException e) {
        throw new ImageFileException(label + ": " + e.getMessage(), e);
      }
    }
    if (jpeg != null && jpeg.components() == 4) {
      Raster raster = reader.readRaster(0, null);
      checkDecodedSize(raster.getWidth(), raster.getHeight(), width, height, label);
      if (raster.getNumBands() != 4) {
        throw new ImageFileException(label + ": decoded " + raster.getNumBands()
            + " bands, its header says 4 components", null);
      }
      return new Argb(CmykJpeg.toArgb(raster, jpeg.ycck()), width, height);
    }
    BufferedImage image = reader.read(0);
    checkDecodedSize(image.getWidth(), image.getHeight(), width, height, label);
    int[] argb = toArgb(image, format == Format.BMP, label);
    if (gif == null) {
      return new Argb(argb, width, height);
    }
    int[] frame = ownInterlacing ? deinterlace(argb, width, height) : argb;
    return GifScreen.of(gif).place(frame, width, height, image.getColorModel());
  }

  private static void checkDecodedSize(int decodedWidth, int decodedHeight, int width, int height, String label)
      throws ImageFileException {
    if (decodedWidth != width || decodedHeight != height) {
      throw new ImageFileException(label + ": decoded " + decodedWidth + " x " + decodedHeight
          + " pixels, its header says " + width + " x " + height, null);
    }
  }

  /**
   * The SavedModel's limits for a GIF (clip_edge/image_decoding.py, header_checks): its logical screen grown to
   * hold every frame within the export's limits, and at most {@link Contract#MAX_GIF_PIXELS} in all its frames.
   */
  private static void checkGif(GifLayout gif, String label, Contract.Image limits) throws ImageFileException {
    try {
      limits.checkSize(gif.width(), gif.height());
    } catch (IllegalArgumentException e) {
      throw new ImageFileException(label + ": " + e.getMessage() + " (a GIF: its logical screen, "
          + gif.screenWidth() + " x " + gif.screenHeight() + ", grown to hold every frame)", e);
    }
    if (gif.pixels() > Contract.MAX_GIF_PIXELS) {
      throw new ImageFileException(label + " is a GIF whose frames hold " + gif.pixels() + " pixels in all ("
          + gif.frames() + " frames); at most " + String.format(Locale.ROOT, "%,d", Contract.MAX_GIF_PIXELS)
          + " are decoded", null);
    }
    if (gif.first() == null) {
      throw new ImageFileException(label + ": GIF without an image descriptor", null);
    }
  }

  /**
   * Whether the JDK's GIF reader misreads this first frame: interlaced, 2 to 4 rows high (any width). At the end
   * of each interlace pass it starts the next without checking that the pass has a row in the frame; the second
   * pass (rows 4, 12, ...) has none in a frame under 5 rows, the third (rows 2, 6, ...) none under 3, and each
   * such pass takes the next row of data and drops it, so that rows land in wrong places or stay palette entry 0.
   * Found on JDK 17 and 25; heights 1 and 5 to 20 come out as Pillow and TensorFlow read them.
   */
  private static boolean jdkMisreadsInterlacing(GifLayout.Frame first) {
    return first.interlaced() && first.height() >= 2 && first.height() <= 4;
  }

  /**
   * The file up to the end of its first frame with the frame's interlace flag off, so that ImageIO gives the rows
   * in the order stored ({@link #deinterlace} then orders them). A copy in memory: for a frame of at most 4 rows,
   * whose data is small, and the header, palette and extensions before it.
   */
  private static ImageInputStream notInterlaced(Path file, GifLayout.Frame first, String label) throws IOException {
    if (first.end() > Integer.MAX_VALUE - 8) {
      throw new ImageFileException(label + ": GIF whose first frame ends at byte " + first.end()
          + ", beyond what is copied to decode it", null);
    }
    byte[] bytes;
    try (InputStream in = Files.newInputStream(file)) {
      bytes = in.readNBytes((int) first.end());
    }
    if (first.flagsAt() < bytes.length) {
      bytes[(int) first.flagsAt()] &= ~0x40;
    }
    return new MemoryCacheImageInputStream(new ByteArrayInputStream(bytes));
  }

  /** Rows stored in GIF's interlaced order (INTERLACE_PASSES), top to bottom. */
  private static int[] deinterlace(int[] stored, int width, int height) {
    int[] rows = new int[stored.length];
    int row = 0;
    for (int[] pass : INTERLACE_PASSES) {
      for (int y = pass[0]; y < height; y += pass[1]) {
        System.arraycopy(stored, row++ * width, rows, y * width, width);
      }
    }
    return rows;
  }

  /**
   * A GIF's canvas as Pillow makes it for the first frame (ImageIO gives the frame alone): the logical screen,
   * grown to hold the frame at its position (left, top); outside the frame, the frame's transparent colour if it
   * has one (the preprocessor composites it onto white), else entry 0 of its palette. TensorFlow's decoder does
   * otherwise (its canvas is the largest frame's size, black around the frame); clip_edge/image_decoding.py
   * corrects it to this rule.
   */
  private record GifScreen(int left, int top, int width, int height) {
    static GifScreen of(GifLayout gif) {
      GifLayout.Frame frame = gif.first();
      return new GifScreen(frame.left(), frame.top(), Math.max(gif.screenWidth(), frame.left() + frame.width()),
          Math.max(gif.screenHeight(), frame.top() + frame.height()));
    }

    /** The frame's pixels (`frameWidth` x `frameHeight`, palette `model`) on this canvas. */
    Argb place(int[] frame, int frameWidth, int frameHeight, ColorModel model) {
      if (left == 0 && top == 0 && width == frameWidth && height == frameHeight) {
        return new Argb(frame, width, height);
      }
      IndexColorModel palette = (IndexColorModel) model;
      int background = palette.getTransparentPixel() >= 0 ? palette.getTransparentPixel() : 0;
      int[] canvas = new int[width * height];
      Arrays.fill(canvas, background < palette.getMapSize() ? palette.getRGB(background) : 0xFF000000);
      for (int y = 0; y < frameHeight; y++) {
        System.arraycopy(frame, y * frameWidth, canvas, (top + y) * width + left, frameWidth);
      }
      return new Argb(canvas, width, height);
    }
  }

  /** The stored sample values as 0xAARRGGBB; see the class comment for why not getRGB. */
  private static int[] toArgb(BufferedImage image, boolean ignoreAlpha, String label) throws ImageFileException {
    int width = image.getWidth();
    int height = image.getHeight();
    Raster raster = image.getRaster();
    ColorModel model = image.getColorModel();
    int[] argb = new int[width * height];
    if (model instanceof IndexColorModel) {
      IndexColorModel palette = (IndexColorModel) model;
      int[] colours = new int[palette.getMapSize()];
      palette.getRGBs(colours); // stored palette entries with their alpha, no conversion
      int[] indices = new int[width];
      for (int y = 0; y < height; y++) {
        raster.getSamples(0, y, width, 1, 0, indices);
        for (int x = 0; x < width; x++) {
          int index = indices[x];
          // An index beyond a short palette: PIL and libpng give black there.
          argb[y * width + x] = index < colours.length ? colours[index] : 0xFF000000;
        }
      }
    } else {
      int bands = raster.getNumBands();
      int colourBands = model.getNumColorComponents();
      boolean alpha = model.hasAlpha() && !ignoreAlpha;
      if (model.isAlphaPremultiplied() || !(colourBands == 1 || colourBands == 3)
          || bands < colourBands || bands > colourBands + 1) {
        throw new ImageFileException(label + ": unsupported pixel layout (" + colourBands + " colour components, "
            + bands + " bands" + (model.isAlphaPremultiplied() ? ", premultiplied alpha" : "") + ")", null);
      }
      int[] maxima = new int[bands];
      for (int band = 0; band < bands; band++) {
        maxima[band] = (1 << raster.getSampleModel().getSampleSize(band)) - 1;
      }
      int[] samples = new int[width * bands];
      for (int y = 0; y < height; y++) {
        raster.getPixels(0, y, width, 1, samples);
        for (int x = 0; x < width; x++) {
          int base = x * bands;
          int r = to8Bits(samples[base], maxima[0]);
          int g = colourBands == 3 ? to8Bits(samples[base + 1], maxima[1]) : r;
          int b = colourBands == 3 ? to8Bits(samples[base + 2], maxima[2]) : r;
          int a = alpha && bands > colourBands ? to8Bits(samples[base + colourBands], maxima[colourBands]) : 255;
          argb[y * width + x] = (a << 24) | (r << 16) | (g << 8) | b;
        }
      }
    }
    if (ignoreAlpha) {
      for (int i = 0; i < argb.length; i++) {
        argb[i] |= 0xFF000000;
      }
    }
    return argb;
  }

  /**
   * A sample of maximum `max` (2^bits - 1) on the 0..255 scale: 8 bits as is; 16 bits by their high byte, as
   * TensorFlow's decode_png does (libpng's strip_16); fewer bits (1, 2, 4-bit grey PNG) rescaled, which for
   * those depths is exactly libpng's bit replication.
   */
  private static int to8Bits(int sample, int max) {
    if (max == 255) {
      return sample;
    }
    if (max > 255) {
      return sample >> (Integer.bitCount(max) - 8);
    }
    return (int) ((sample * 255L + max / 2) / max);
  }
}
