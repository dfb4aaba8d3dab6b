/* champs.c - the champ data the worker never reads, left out of messages; see champs.h. */
#include "ds2grist/champs.h"

#include <string.h>

/* The kinds with an explicit rule in worker/mapping_kinds.c (generic = 0), by name
 * without the "Champ" / "ChampDescriptor" suffix. A kind missing here is only not
 * pruned; one wrongly here would lose sub-columns, which test_mapping rules out. */
static const char *const ruled_kinds[] = {
    "Text", "Textarea", "Email", "Phone", "Iban", "Civilite", "Formatted", "Number", "Date",
    "Datetime", "IntegerNumber", "DecimalNumber", "Checkbox", "YesNo", "DropDownList",
    "MultipleDropDownList", "LinkedDropDownList", "PieceJustificative", "TitreIdentite",
    "Commune", "Address", "Pays", "Region", "Departement", "Epci", "Siret", "RNA", "RNF",
    "EngagementJuridique", "DossierLink", "Carte", "Repetition", "HeaderSection", "Explication",
    NULL,
};

int d2g_champs_ruled(const char *typename) {
    if (!typename)
        return 0;
    size_t n = strlen(typename);
    static const char *const suffixes[] = {"ChampDescriptor", "Champ"};
    for (size_t s = 0; s < 2; s++) {
        size_t sl = strlen(suffixes[s]);
        if (n <= sl || strcmp(typename + n - sl, suffixes[s]) != 0)
            continue;
        for (size_t i = 0; ruled_kinds[i]; i++)
            if (strlen(ruled_kinds[i]) == n - sl && strncmp(ruled_kinds[i], typename, n - sl) == 0)
                return 1;
        return 0;
    }
    return 0;
}

static void index_descriptors(json_t *descs, json_t *out) {
    size_t i;
    json_t *d;
    json_array_foreach(descs, i, d) {
        const char *id = json_string_value(json_object_get(d, "id"));
        if (id && d2g_champs_ruled(json_string_value(json_object_get(d, "__typename"))))
            json_object_set_new(out, id, json_true());
        index_descriptors(json_object_get(d, "champDescriptors"), out); /* repetition blocks */
    }
}

json_t *d2g_champs_ruled_descriptors(json_t *revision) {
    if (!json_is_object(revision))
        return NULL;
    json_t *out = json_object();
    index_descriptors(json_object_get(revision, "champDescriptors"), out);
    index_descriptors(json_object_get(revision, "annotationDescriptors"), out);
    return out;
}

static size_t prune_champs(json_t *champs, json_t *ruled) {
    size_t n = 0, i;
    json_t *ch;
    json_array_foreach(champs, i, ch) {
        const char *desc = json_string_value(json_object_get(ch, "champDescriptorId"));
        if (desc && json_object_get(ruled, desc) &&
            d2g_champs_ruled(json_string_value(json_object_get(ch, "__typename"))) &&
            json_object_del(ch, "columns") == 0)
            n++;
        size_t k;
        json_t *row;
        json_array_foreach(json_object_get(ch, "rows"), k, row) n += prune_champs(json_object_get(row, "champs"), ruled);
    }
    return n;
}

size_t d2g_champs_prune(json_t *dossier, json_t *ruled) {
    if (!ruled)
        return 0;
    return prune_champs(json_object_get(dossier, "champs"), ruled) +
           prune_champs(json_object_get(dossier, "annotations"), ruled);
}
