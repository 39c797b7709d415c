package dev.clipedge.demo;

import android.Manifest.permission;
import android.app.Activity;
import android.content.ContentUris;
import android.content.pm.PackageManager;
import android.database.Cursor;
import android.graphics.Bitmap;
import android.net.Uri;
import android.os.Build;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.provider.MediaStore;
import android.util.Size;
import android.widget.Button;
import android.widget.EditText;
import android.widget.GridLayout;
import android.widget.ImageView;
import android.widget.LinearLayout;
import android.widget.ScrollView;
import android.widget.TextView;
import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.Environment;
import dev.clipedge.clip.ImageEncoder;
import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.image.ImagePreprocessor;
import dev.clipedge.clip.index.ElementType;
import dev.clipedge.clip.index.Fingerprint;
import dev.clipedge.clip.index.IndexFile;
import dev.clipedge.clip.index.IndexSearcher;
import dev.clipedge.clip.index.IndexUpdater;
import dev.clipedge.clip.index.PhotoSearch;
import dev.clipedge.clip.runtime.ModelLoader;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Semantic photo search: index the gallery (MediaStore images, ids are their content URIs) on a worker thread
 * with progress, type a query, see the best photos' thumbnails. The index, the incremental update and the
 * search are the core's ({@link IndexUpdater}, {@link PhotoSearch}); this class lists the gallery, decodes
 * photos and shows results. The index lives in the app's files/photos.clipidx, made by the dynamic_int8 image
 * encoder when the export has it (the CPU variant), else by its first image variant.
 */
public final class SearchActivity extends Activity {
  private static final int RESULTS = 30;
  private static final int ASK_PHOTOS = 1;

  private final ExecutorService worker = Executors.newSingleThreadExecutor();
  private final Handler ui = new Handler(Looper.getMainLooper());
  // Touched only on the worker thread.
  private Manifest manifest;
  private Environment environment;
  private ModelLoader loader;
  private String variant;
  private PhotoSearch search;

  private File indexFile;
  private EditText query;
  private TextView status;
  private GridLayout results;

  @Override
  protected void onCreate(Bundle state) {
    super.onCreate(state);
    indexFile = new File(getFilesDir(), "photos.clipidx");
    setContentView(layout());
    String read = Build.VERSION.SDK_INT >= 33 ? permission.READ_MEDIA_IMAGES : permission.READ_EXTERNAL_STORAGE;
    if (checkSelfPermission(read) != PackageManager.PERMISSION_GRANTED) {
      requestPermissions(new String[] {read}, ASK_PHOTOS);
    }
    worker.execute(() -> {
      try {
        manifest = Manifest.load(ExportFiles.install(this));
        environment = Environment.create(this);
        loader = LiteRtAndroidModel.loader(manifest, Accelerator.CPU, environment);
        List<String> available = manifest.variants("image");
        variant = available.contains("dynamic_int8") ? "dynamic_int8" : available.get(0);
        post(indexFile.exists() ? "ready: type a query" : "index the gallery first");
      } catch (Exception e) {
        post("cannot load the export: " + e.getMessage());
      }
    });
  }

  private ScrollView layout() {
    LinearLayout column = new LinearLayout(this);
    column.setOrientation(LinearLayout.VERTICAL);
    column.setPadding(32, 32, 32, 32);
    Button index = new Button(this);
    index.setText("Index the gallery");
    index.setOnClickListener(v -> worker.execute(this::indexGallery));
    query = new EditText(this);
    query.setHint("a dog on a beach");
    Button go = new Button(this);
    go.setText("Search");
    go.setOnClickListener(v -> {
      String text = query.getText().toString();
      worker.execute(() -> search(text));
    });
    status = new TextView(this);
    results = new GridLayout(this);
    results.setColumnCount(3);
    for (android.view.View view : new android.view.View[] {index, query, go, status, results}) {
      column.addView(view);
    }
    ScrollView scroll = new ScrollView(this);
    scroll.addView(column);
    return scroll;
  }

  /** A gallery photo: its content URI is its id. */
  private final class GalleryPhoto implements IndexUpdater.Photo {
    final Uri uri;

    GalleryPhoto(Uri uri) {
      this.uri = uri;
    }

    @Override
    public String id() {
      return uri.toString();
    }

    @Override
    public InputStream open() throws IOException {
      return getContentResolver().openInputStream(uri);
    }
  }

  /** Worker thread: embeds new and changed gallery photos; rows of deleted photos go (they are not listed). */
  private void indexGallery() {
    try {
      List<GalleryPhoto> photos = new ArrayList<>();
      Uri images = MediaStore.Images.Media.EXTERNAL_CONTENT_URI;
      try (Cursor cursor = getContentResolver().query(images, new String[] {MediaStore.Images.Media._ID}, null,
          null, null)) {
        while (cursor != null && cursor.moveToNext()) {
          photos.add(new GalleryPhoto(ContentUris.withAppendedId(images, cursor.getLong(0))));
        }
      }
      closeSearch(); // the index is about to change
      IndexUpdater.Summary summary;
      try (ImageEncoder encoder = new ImageEncoder(manifest, variant, loader)) {
        ImagePreprocessor preprocessor = encoder.preprocessor();
        IndexUpdater updater = new IndexUpdater(indexFile.toPath(), Fingerprint.of(manifest, variant),
            ElementType.INT8, encoder.embeddingSize());
        summary = updater.update(photos, id -> false, photo -> {
          try {
            Pixels.Decoded decoded = Pixels.decode(getContentResolver(), ((GalleryPhoto) photo).uri,
                preprocessor.limits());
            return encoder.encode(preprocessor.fromArgb(decoded.argb(), decoded.width(), decoded.height()));
          } catch (IOException e) {
            throw new IndexUpdater.Unreadable(e.getMessage());
          }
        }, new IndexUpdater.Progress() {
          @Override
          public void photo(int done, int total, int embedded) {
            post(String.format(Locale.ROOT, "indexing: %d/%d photos, %d embedded", done, total, embedded));
          }

          @Override
          public void skipped(String id, String reason) {}
        });
      }
      post(String.format(Locale.ROOT, "%d photos indexed (%d new, %d changed, %d removed, %d unreadable)",
          summary.rows(), summary.added(), summary.changed(), summary.removed(), summary.skipped().size()));
    } catch (Exception | OutOfMemoryError e) {
      post("indexing failed: " + e.getMessage());
    }
  }

  /** Worker thread: the best photos for {@code text}, shown as thumbnails. */
  private void search(String text) {
    try {
      if (search == null) {
        search = PhotoSearch.open(manifest, null, loader, IndexFile.load(indexFile.toPath()));
      }
      long start = System.nanoTime();
      List<IndexSearcher.Hit> hits = search.searchText(text, RESULTS);
      double ms = (System.nanoTime() - start) / 1e6;
      List<Bitmap> thumbnails = new ArrayList<>();
      for (IndexSearcher.Hit hit : hits) {
        thumbnails.add(thumbnail(Uri.parse(hit.id())));
      }
      ui.post(() -> {
        results.removeAllViews();
        for (Bitmap thumbnail : thumbnails) {
          ImageView view = new ImageView(this);
          view.setImageBitmap(thumbnail);
          results.addView(view);
        }
        status.setText(String.format(Locale.ROOT, "%d results in %.0f ms (text encoder included)", hits.size(), ms));
      });
    } catch (Exception | OutOfMemoryError e) {
      post("search failed: " + e.getMessage());
    }
  }

  @SuppressWarnings("deprecation") // Thumbnails.getThumbnail is the only thumbnail API below Android 10
  private Bitmap thumbnail(Uri uri) throws IOException {
    if (Build.VERSION.SDK_INT >= 29) {
      return getContentResolver().loadThumbnail(uri, new Size(256, 256), null);
    }
    return MediaStore.Images.Thumbnails.getThumbnail(getContentResolver(), ContentUris.parseId(uri),
        MediaStore.Images.Thumbnails.MINI_KIND, null);
  }

  private void closeSearch() {
    if (search != null) {
      search.close();
      search = null;
    }
  }

  private void post(String text) {
    ui.post(() -> status.setText(text));
  }

  @Override
  protected void onDestroy() {
    worker.execute(() -> {
      closeSearch();
      if (environment != null) {
        environment.close();
      }
    });
    worker.shutdown();
    super.onDestroy();
  }
}
