package dev.clipedge.clip.cli;

import dev.clipedge.clip.image.ImageFiles;
import dev.clipedge.clip.image.ImagePreprocessor;
import java.nio.file.Path;

/** An image file as the image encoder takes it: decoded (ImageIO), resized and centre-cropped like PIL. */
final class ImageInput {
  private ImageInput() {}

  static byte[] rgb(Path file, ImagePreprocessor preprocessor) throws ImageFiles.ImageFileException {
    ImageFiles.Argb image = ImageFiles.read(file, preprocessor.limits());
    return preprocessor.fromArgb(image.pixels(), image.width(), image.height());
  }
}
