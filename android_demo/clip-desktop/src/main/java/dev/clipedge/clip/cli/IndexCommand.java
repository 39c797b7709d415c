package dev.clipedge.clip.cli;

import dev.clipedge.clip.ImageEncoder;
import dev.clipedge.clip.Json;
import dev.clipedge.clip.image.ImageFiles;
import dev.clipedge.clip.image.ImagePreprocessor;
import dev.clipedge.clip.index.ElementType;
import dev.clipedge.clip.index.Fingerprint;
import dev.clipedge.clip.index.IndexUpdater;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * {@code index --export DIR --variant V --index FILE [--dtype int8|float16] FOLDER...}: adds the photos under
 * the folders (PNG, JPEG, GIF and BMP files by extension, subfolders included, symbolic links not followed) to
 * the index, embedding only new or changed files, and removes rows of files that no longer exist. Ids are
 * absolute paths. Progress and skipped files go to stderr, the summary to stdout as one JSON object.
 */
final class IndexCommand implements Main.Command {
  private static final String[] EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp"};
  /** Progress lines at most this often. */
  private static final long PROGRESS_NANOS = 1_000_000_000L;

  @Override
  public String usage() {
    return "index " + ExportFlags.USAGE + " --index FILE [--dtype int8|float16] FOLDER...";
  }

  @Override
  public int run(Main.Options options, InputStream in, PrintStream out) throws Exception {
    Path index = Path.of(options.required("index"));
    String dtype = options.optional("dtype", "int8");
    ExportFlags export = ExportFlags.fromOptions(options);
    ElementType type;
    try {
      type = ElementType.fromLabel(dtype);
    } catch (IllegalArgumentException e) {
      throw new Main.UsageException("--dtype " + e.getMessage());
    }
    if (options.positional().isEmpty()) {
      throw new Main.UsageException("no folder given");
    }
    List<IndexUpdater.FilePhoto> photos = new ArrayList<>();
    for (String folder : options.positional()) {
      photos.addAll(list(Path.of(folder)));
    }
    Fingerprint fingerprint = Fingerprint.of(export.manifest, export.variant);
    IndexUpdater.Summary summary;
    try (ImageEncoder encoder = new ImageEncoder(export.manifest, export.variant, export.loader)) {
      ImagePreprocessor preprocessor = encoder.preprocessor();
      IndexUpdater updater = new IndexUpdater(index, fingerprint, type, encoder.embeddingSize());
      summary = updater.update(photos, id -> Files.isRegularFile(Path.of(id)), photo -> {
        try {
          return encoder.encode(ImageInput.rgb(((IndexUpdater.FilePhoto) photo).path(), preprocessor));
        } catch (ImageFiles.ImageFileException e) {
          throw new IndexUpdater.Unreadable(e.getMessage());
        }
      }, new StderrProgress());
    }
    out.println("{\"index\": " + Json.quote(index.toString()) + ", \"rows\": " + summary.rows() + ", \"added\": "
        + summary.added() + ", \"changed\": " + summary.changed() + ", \"unchanged\": " + summary.unchanged()
        + ", \"removed\": " + summary.removed() + ", \"skipped\": " + summary.skipped().size() + "}");
    return 0;
  }

  private static List<IndexUpdater.FilePhoto> list(Path folder) throws IOException {
    if (!Files.isDirectory(folder)) {
      throw new IllegalArgumentException("folder " + folder + " does not exist or is not a folder");
    }
    try (Stream<Path> paths = Files.walk(folder.toAbsolutePath().normalize())) {
      return paths.filter(Files::isRegularFile).filter(IndexCommand::isImageName).sorted()
          .map(IndexUpdater.FilePhoto::new).collect(java.util.stream.Collectors.toList());
    }
  }

  private static boolean isImageName(Path path) {
    String name = path.getFileName().toString().toLowerCase(Locale.ROOT);
    for (String extension : EXTENSIONS) {
      if (name.endsWith(extension)) {
        return true;
      }
    }
    return false;
  }

  /** "index: 120/5000 photos, 30 embedded" at most once a second and at the end; skipped files as they come. */
  private static final class StderrProgress implements IndexUpdater.Progress {
    private long last = System.nanoTime();

    @Override
    public void photo(int done, int total, int embedded) {
      long now = System.nanoTime();
      if (done == total || now - last >= PROGRESS_NANOS) {
        last = now;
        System.err.println("index: " + done + "/" + total + " photos, " + embedded + " embedded");
      }
    }

    @Override
    public void skipped(String id, String reason) {
      System.err.println("index: skipped " + id + ": " + reason);
    }
  }
}
